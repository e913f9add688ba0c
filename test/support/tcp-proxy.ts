import net from 'node:net';

/**
 * A TCP proxy on loopback between a client and a real server, for fault tests: it can drop every
 * connection (a server restart), blackhole traffic (a partition without FIN), or refuse new ones
 * (a server that is down).
 */
export class TcpProxy {
  readonly #target: { host: string; port: number };
  readonly #server: net.Server;
  readonly #pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  #mode: 'pass' | 'blackhole' | 'refuse' = 'pass';

  constructor(targetHost: string, targetPort: number) {
    this.#target = { host: targetHost, port: targetPort };
    this.#server = net.createServer((client) => this.#accept(client));
  }

  /** Listens on an ephemeral loopback port; resolves the port. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return (this.#server.address() as net.AddressInfo).port;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  /** Passes traffic both ways (the default). */
  pass(): void {
    this.#mode = 'pass';
    for (const { client, upstream } of this.#pairs) {
      client.resume();
      upstream.resume();
    }
  }

  /** Stops forwarding on every connection without closing any (a partition without FIN). */
  blackhole(): void {
    this.#mode = 'blackhole';
    for (const { client, upstream } of this.#pairs) {
      client.pause();
      upstream.pause();
    }
  }

  /** Destroys every open connection and refuses new ones until `pass()` (a server that is down). */
  down(): void {
    this.#mode = 'refuse';
    this.dropAll();
  }

  /** Destroys every open connection (RST), keeps accepting new ones. */
  dropAll(): void {
    for (const { client, upstream } of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.#pairs.clear();
  }

  /** Closes the proxy and every connection through it. */
  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: net.Socket): void {
    if (this.#mode === 'refuse') {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.#target.port, this.#target.host);
    const pair = { client, upstream };
    this.#pairs.add(pair);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      this.#pairs.delete(pair);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.on('data', (chunk) => {
      if (this.#mode === 'pass') upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (this.#mode === 'pass') client.write(chunk);
    });
    if (this.#mode === 'blackhole') {
      client.pause();
      upstream.pause();
    }
  }
}
