/** The tools' TCP proxy (harness/tcp-proxy.ts), for the adapters' network fault tests. */
export { TcpProxy } from '../../harness/tcp-proxy.js';
