// A plain node:http service drained on SIGTERM with graceful-drain/http: /readyz turns 503 at once, the
// server keeps serving for a short delay (while the load balancer learns the pod is leaving), then
// stops listening; a slow request already in flight completes, every response during the drain says
// `Connection: close`, and the process exits 0 with the report. It drives itself: start, a slow
// request, SIGTERM to itself, requests during the drain.
//   npx tsx examples/http-service/main.ts
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { DrainController, createProbeHandler, installSignalHandlers } from 'graceful-drain';
import { trackHttpServer } from 'graceful-drain/http';

// In production: the load balancers' propagation time, 5 s by default. Kept short for the demo.
const SHUTDOWN_DELAY_MS = 300;
const SLOW_REQUEST_MS = 800;

const t0 = performance.now();
const say = (line: string): void =>
  console.log(`[${String(Math.round(performance.now() - t0)).padStart(4)} ms] ${line}`);
let requestStarted: () => void = () => {};

// The application: a plain request handler, unaware of graceful-drain.
function app(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname !== '/work') {
    res.writeHead(404).end();
    return;
  }
  const ms = Number(url.searchParams.get('ms') ?? '50');
  requestStarted();
  setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end(`worked ${ms} ms\n`), ms);
}

// The service: what adopting graceful-drain adds to a plain node:http server (see the README's diff).
const drain = new DrainController({ shutdownTimeoutMs: 5_000 });
const server = http.createServer(app);
const tracked = trackHttpServer(drain, server, { shutdownDelayMs: SHUTDOWN_DELAY_MS });
// Probes on a port of their own, unref'd: liveness answers until the process exits.
const probes = createProbeHandler(drain);
const probeServer = http.createServer((req, res) => probes(req, res) || res.writeHead(404).end());

let clientDone: Promise<void> = Promise.resolve();
installSignalHandlers(drain, {
  onShutdown: async (report) => {
    await tracked.closed; // already so: the drain waited for the server to close
    say('server closed');
    await clientDone;
    const { outcome, inFlightAtStart, completed, aborted, durationMs } = report;
    console.log(
      `report ${JSON.stringify({ outcome, inFlightAtStart, completed, aborted, durationMs: Math.round(durationMs) })}`,
    );
  },
});

await drain.start();
server.listen(0, '127.0.0.1');
probeServer.listen(0, '127.0.0.1').unref();
await Promise.all([once(server, 'listening'), once(probeServer, 'listening')]);
const { port } = server.address() as AddressInfo;
const probePort = (probeServer.address() as AddressInfo).port;
say(`listening on http://127.0.0.1:${port}, probes on http://127.0.0.1:${probePort}`);

// The client side of the scenario: a keep-alive agent, like a load balancer's.
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function get(path: string, options: { agent?: http.Agent | false; port?: number } = {}): Promise<string> {
  return new Promise((resolve) => {
    const { agent: via = agent, port: to = port } = options;
    const req = http.get({ port: to, path, host: '127.0.0.1', agent: via }, (res) => {
      res.resume();
      res.on('end', () => resolve(`${res.statusCode ?? 0} (connection: ${res.headers.connection ?? '-'})`));
    });
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}
// Probes open a new connection each time, like the kubelet's; their status is what counts.
const probe = async (path: string): Promise<string> =>
  (await get(path, { agent: false, port: probePort })).split(' ', 1)[0] ?? '';

say(`GET /readyz -> ${await probe('/readyz')}`);
say(`GET /work?ms=20 -> ${await get('/work?ms=20')}; its keep-alive socket now sits idle`);

const started = new Promise<void>((resolve) => (requestStarted = resolve));
clientDone = get(`/work?ms=${SLOW_REQUEST_MS}`, { agent: false }).then((done) => {
  say(`slow request completed during the drain -> ${done}`);
  agent.destroy();
});
await started;
say(`slow request in flight; sending SIGTERM to myself`);
process.kill(process.pid, 'SIGTERM');
await once(drain, 'stateChange');

say(`during the drain: GET /readyz -> ${await probe('/readyz')}`);
say(`during the delay: GET /work on the kept-alive socket -> ${await get('/work?ms=20')}`);
await sleep(SHUTDOWN_DELAY_MS);
say(`after the delay: GET /work -> ${await get('/work?ms=20', { agent: false })}`);
say(`during the drain: GET /livez -> ${await probe('/livez')} (the listener is closed, the probes' is not)`);
