/**
 * A loopback TCP proxy between a client and a real server, through which the tests and the chaos
 * harness inject network faults without touching the server:
 *
 * - `setBlackhole(true)` (`blackhole()`): nothing flows either way, closes included (no FIN gets
 *   through), a partition; `setBlackhole(false)` lets what was held through, as TCP would once the path
 *   is back.
 * - `setDelay(ms)`: every chunk is forwarded `ms` later, in order.
 * - `setDown(true)` (`down()`): every connection is destroyed and new ones refused until
 *   `setDown(false)`, which is what a restart of the server looks like from the client's side.
 * - `dropAll()`: every connection is destroyed (RST); new ones are accepted.
 * - `pass()`: no fault of any kind.
 *
 * A userspace proxy keeps both TCP connections healthy while it holds traffic (the kernel answers
 * keepalives), so a server never sees a member vanish behind a blackhole: the close reaches it once
 * the partition heals, as it would once TCP keepalives gave up on a real one.
 */
import net from 'node:net';

type Mode = 'pass' | 'blackhole' | 'down';

/** One direction of a connection: holds chunks while blackholed, delays them when asked. */
class Pipe {
  readonly #to: net.Socket;
  readonly #held: Buffer[] = [];
  #releaseAt = 0;

  constructor(to: net.Socket) {
    this.#to = to;
  }

  push(chunk: Buffer, mode: Mode, delayMs: number): void {
    if (mode !== 'pass' || this.#held.length > 0) {
      this.#held.push(chunk);
      return;
    }
    this.#send(chunk, delayMs);
  }

  flush(delayMs: number): void {
    const held = this.#held.splice(0);
    for (const chunk of held) this.#send(chunk, delayMs);
  }

  #send(chunk: Buffer, delayMs: number): void {
    const now = performance.now();
    if (delayMs <= 0 && this.#releaseAt <= now) {
      if (!this.#to.destroyed) this.#to.write(chunk);
      return;
    }
    // Never overtake a chunk still delayed: order is what TCP promises.
    this.#releaseAt = Math.max(now + delayMs, this.#releaseAt);
    setTimeout(() => {
      if (!this.#to.destroyed) this.#to.write(chunk);
    }, this.#releaseAt - now);
  }
}

interface Pair {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  readonly up: Pipe;
  readonly down: Pipe;
  /** One side closed while blackholed: the other hears of it once the path is back. */
  closing: boolean;
}

/** A TCP proxy on an ephemeral loopback port, forwarding to one server. */
export class TcpProxy {
  readonly #target: { readonly host: string; readonly port: number };
  readonly #server: net.Server;
  readonly #pairs = new Set<Pair>();
  #blackholed = false;
  #down = false;
  #delayMs = 0;

  constructor(targetHost: string, targetPort: number) {
    this.#target = { host: targetHost, port: targetPort };
    this.#server = net.createServer((client) => this.#accept(client));
  }

  /** Starts listening; resolves the port. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return this.port;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  /** How many connections go through it now. */
  get connections(): number {
    return this.#pairs.size;
  }

  get #mode(): Mode {
    return this.#down ? 'down' : this.#blackholed ? 'blackhole' : 'pass';
  }

  /** Holds every byte, both ways, without closing anything (`false`: lets what was held through). */
  setBlackhole(on: boolean): void {
    this.#blackholed = on;
    if (!on) this.#flush();
  }

  /** Forwards every chunk `ms` later (0: at once). */
  setDelay(ms: number): void {
    this.#delayMs = ms;
  }

  /** Destroys every connection and refuses new ones (`false`: accepts them again). */
  setDown(on: boolean): void {
    this.#down = on;
    if (on) this.dropAll();
    else this.#flush();
  }

  /** `setBlackhole(true)`. */
  blackhole(): void {
    this.setBlackhole(true);
  }

  /** `setDown(true)`. */
  down(): void {
    this.setDown(true);
  }

  /** Destroys every open connection (RST), and keeps accepting new ones. */
  dropAll(): void {
    for (const pair of [...this.#pairs]) this.#destroy(pair);
  }

  /** Back to normal: no fault of any kind. */
  pass(): void {
    this.#down = false;
    this.#blackholed = false;
    this.#delayMs = 0;
    this.#flush();
  }

  #flush(): void {
    if (this.#mode !== 'pass') return;
    for (const pair of [...this.#pairs]) {
      pair.up.flush(this.#delayMs);
      pair.down.flush(this.#delayMs);
      if (pair.closing) this.#destroy(pair);
    }
  }

  /** Closes the proxy and every connection through it. */
  async close(): Promise<void> {
    this.setDown(true);
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #destroy(pair: Pair): void {
    pair.client.destroy();
    pair.upstream.destroy();
    this.#pairs.delete(pair);
  }

  #accept(client: net.Socket): void {
    if (this.#mode === 'down') {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.#target.port, this.#target.host);
    const pair: Pair = { client, upstream, up: new Pipe(upstream), down: new Pipe(client), closing: false };
    this.#pairs.add(pair);
    // A close is traffic too: behind a blackhole the other side does not hear of it (no FIN gets through).
    const end = (): void => {
      if (this.#mode === 'blackhole') pair.closing = true;
      else this.#destroy(pair);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.on('data', (chunk: Buffer) => pair.up.push(chunk, this.#mode, this.#delayMs));
    upstream.on('data', (chunk: Buffer) => pair.down.push(chunk, this.#mode, this.#delayMs));
  }
}
