import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConfigurationError, DrainController, createProbeHandler } from '../src/index.js';
import { trackHttpServer } from '../src/integrations/http.js';
import { type Deferred, deferred, fakeTimers, started } from './support/drain.js';

// Real sockets on loopback; fake timers (the delay, the drain deadline), so that time moves only when
// a test says so.
beforeEach(() => fakeTimers());

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function listen(server: http.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanup.push(() => {
    server.closeAllConnections();
    if (server.listening) server.close();
  });
  return (server.address() as AddressInfo).port;
}

interface Reply {
  readonly status: number;
  readonly connection: string | undefined;
  readonly body: string;
}

function get(port: number, path: string, agent: http.Agent | false = false): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** A server whose `/hold` requests wait for the test (`held`), and whose other requests answer at once. */
function app(): { server: http.Server; held: Deferred<void>[]; arrived: EventEmitter } {
  const held: Deferred<void>[] = [];
  const arrived = new EventEmitter();
  const server = http.createServer((req, res) => {
    if (!req.url?.startsWith('/hold')) {
      res.end('ok');
      return;
    }
    const d = deferred();
    held.push(d);
    arrived.emit('hold');
    void d.promise.then(() => res.end('held'));
  });
  return { server, held, arrived };
}

function keepAlive(): http.Agent {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  cleanup.push(() => agent.destroy());
  return agent;
}

/** Resolves on the next turn of the event loop: lets real I/O in flight land. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('trackHttpServer()', () => {
  it('tracks each request the moment it arrives, and the server as one task', async () => {
    const drain = await started();
    const { server, held, arrived } = app();
    const tracked = trackHttpServer(drain, server);
    const port = await listen(server);
    expect(drain.inFlight).toBe(1); // the server task
    const reply = get(port, '/hold');
    await once(arrived, 'hold');
    expect([drain.inFlight, tracked.inFlight]).toEqual([2, 1]);
    held[0]?.resolve();
    expect((await reply).body).toBe('held');
    expect([drain.inFlight, tracked.inFlight]).toEqual([1, 0]);
    await drain.shutdown({ force: true });
  });

  it('keeps serving through the delay, every response saying Connection: close; liveness answers throughout', async () => {
    const drain = await started({ shutdownTimeoutMs: 10_000 });
    const { server, held, arrived } = app();
    const tracked = trackHttpServer(drain, server, { shutdownDelayMs: 1_000 });
    const port = await listen(server);
    // Probes on a port of their own, unref'd: they answer until the process exits.
    const probes = createProbeHandler(drain);
    const probeServer = http.createServer((req, res) => probes(req, res) || res.writeHead(404).end());
    const probePort = await listen(probeServer);
    probeServer.unref();

    const agent = keepAlive();
    expect(await get(port, '/', agent)).toMatchObject({ status: 200, connection: 'keep-alive' });
    const slow = get(port, '/hold', keepAlive());
    await once(arrived, 'hold');

    const shutdown = drain.shutdown();
    expect(drain.ready).toBe(false);
    expect(tracked.state).toBe('delaying');
    expect((await get(probePort, '/readyz')).status).toBe(503);
    // The load balancer still routes here: on the kept-alive socket, and on a new connection.
    expect(await get(port, '/', agent)).toMatchObject({ status: 200, connection: 'close' });
    expect(await get(port, '/')).toMatchObject({ status: 200, connection: 'close' });
    held[0]?.resolve();
    expect(await slow).toMatchObject({ status: 200, connection: 'close', body: 'held' });

    await vi.advanceTimersByTimeAsync(1_000);
    expect(tracked.state).not.toBe('serving');
    await tracked.closed;
    expect(server.listening).toBe(false);
    expect((await get(probePort, '/livez')).status).toBe(200);
    await expect(get(port, '/')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    const report = await shutdown;
    expect(report).toMatchObject({ outcome: 'clean', inFlightAtStart: 2, completed: 2, aborted: 0 });
  });

  it('closes idle keep-alive sockets, and answers a request whose bytes it has read', async () => {
    const drain = await started({ shutdownTimeoutMs: 10_000 });
    const { server } = app();
    const serverSockets: net.Socket[] = [];
    server.on('connection', (socket: net.Socket) => serverSockets.push(socket));
    const tracked = trackHttpServer(drain, server, { shutdownDelayMs: 0 });
    const port = await listen(server);
    const connect = async (): Promise<net.Socket> => {
      const socket = net.connect(port, '127.0.0.1');
      cleanup.push(() => socket.destroy());
      socket.setEncoding('utf8');
      await once(socket, 'connect');
      return socket;
    };
    const errors: unknown[] = [];

    // An idle keep-alive socket: one request answered, nothing since.
    const idle = await connect();
    idle.on('error', (error) => errors.push(error));
    idle.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(String((await once(idle, 'data'))[0])).toMatch(/^HTTP\/1.1 200 OK\r\n[^]*Connection: keep-alive/);

    // A request racing the close: its first bytes are on the server, its headers not complete.
    const racing = await connect();
    racing.on('error', (error) => errors.push(error));
    racing.write('GET /racing HTTP/1.1\r\nHost: x\r\n');
    while (serverSockets.length < 2 || serverSockets[1]?.bytesRead === 0) await turn();

    let shutDown = false;
    const shutdown = drain.shutdown().then((report) => ((shutDown = true), report));
    expect(tracked.state).toBe('closing');
    await once(idle, 'close');
    await turn();
    expect([racing.destroyed, shutDown]).toEqual([false, false]);

    let answer = '';
    racing.on('data', (chunk: string) => (answer += chunk));
    racing.write('\r\n');
    await once(racing, 'end');
    expect(answer).toMatch(/^HTTP\/1.1 200 OK\r\n[^]*Connection: close\r\n[^]*\r\n\r\nok$/);
    expect(await shutdown).toMatchObject({ outcome: 'clean', inFlightAtStart: 1, aborted: 0 });
    expect(errors).toEqual([]);
  });

  /**
   * A rolling stop: a load balancer keeps sending requests (four keep-alive connections) until,
   * `propagationMs` after the shutdown began, it learns the pod is leaving and stops routing here.
   */
  async function rollingStop(shutdownDelayMs: number, propagationMs: number) {
    const drain = await started({ shutdownTimeoutMs: 10_000 });
    const server = http.createServer((_req, res) => res.end('ok'));
    trackHttpServer(drain, server, { shutdownDelayMs });
    const port = await listen(server);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    cleanup.push(() => agent.destroy());
    const progress = new EventEmitter();
    let routing = true;
    let attempts = 0;
    let served = 0;
    const failures: string[] = [];
    const client = async (): Promise<void> => {
      while (routing) {
        try {
          await get(port, '/', agent);
          served++;
        } catch (error) {
          failures.push((error as NodeJS.ErrnoException).code ?? String(error));
        }
        attempts++;
        progress.emit('attempt');
      }
    };
    const moreAttempts = async (n: number): Promise<void> => {
      const target = attempts + n;
      while (attempts < target) await once(progress, 'attempt');
    };
    const clients = [client(), client(), client(), client()];
    await moreAttempts(20);

    const shutdown = drain.shutdown();
    // Propagation time passes in steps of 10 ms, traffic flowing in each step.
    for (let t = 0; t < propagationMs; t += 10) {
      await moreAttempts(8);
      await vi.advanceTimersByTimeAsync(10);
    }
    routing = false;
    await Promise.all(clients);
    await vi.advanceTimersByTimeAsync(10_000);
    return { served, failures, report: await shutdown };
  }

  it('drops no request across a rolling stop when the delay covers the propagation', async () => {
    const { served, failures, report } = await rollingStop(200, 100);
    expect(failures).toEqual([]);
    expect(served).toBeGreaterThan(100);
    expect(report).toMatchObject({ outcome: 'clean', aborted: 0 });
  });

  it('drops requests across a rolling stop without the delay (the test above can fail)', async () => {
    const { failures, report } = await rollingStop(0, 100);
    expect(failures.length).toBeGreaterThan(0);
    expect(report.outcome).toBe('clean'); // the drain itself was fine: the requests never reached it
  });

  it('cuts the requests still in flight at the drain deadline; the report names them', async () => {
    const drain = await started({ shutdownTimeoutMs: 2_000 }); // abortGraceMs 1 000: abort at 1 000
    const { server, arrived } = app();
    const tracked = trackHttpServer(drain, server, { shutdownDelayMs: 300 });
    const port = await listen(server);
    const before = get(port, '/hold?secret=1').catch((error: unknown) => error);
    await once(arrived, 'hold');
    const shutdown = drain.shutdown();
    // During the delay: carried by the server task.
    const during = get(port, '/hold').catch((error: unknown) => error);
    await once(arrived, 'hold');
    expect(tracked.inFlight).toBe(2);

    await vi.advanceTimersByTimeAsync(300);
    expect(tracked.state).toBe('closing');
    await vi.advanceTimersByTimeAsync(700);
    expect(await before).toMatchObject({ code: 'ECONNRESET' });
    expect(await during).toMatchObject({ code: 'ECONNRESET' });
    await tracked.closed;
    await vi.advanceTimersByTimeAsync(1_000);
    const report = await shutdown;
    expect(report).toMatchObject({ outcome: 'timed-out', inFlightAtStart: 2, aborted: 2, stragglers: 0 });
    expect([...report.abortedLabels].sort()).toEqual(['GET /hold', 'http server']);
  });

  it('destroys every connection at once when the shutdown is forced', async () => {
    const drain = await started();
    const { server, arrived } = app();
    const tracked = trackHttpServer(drain, server);
    const port = await listen(server);
    const reply = get(port, '/hold').catch((error: unknown) => error);
    await once(arrived, 'hold');
    const report = drain.shutdown({ force: true });
    expect(await reply).toMatchObject({ code: 'ECONNRESET' });
    await tracked.closed;
    expect(await report).toMatchObject({ outcome: 'forced', aborted: 2 });
  });

  it('serves before the controller runs, and lets the server go when the application closes it', async () => {
    const drain = new DrainController();
    const { server } = app();
    const tracked = trackHttpServer(drain, server);
    const port = await listen(server);
    expect((await get(port, '/')).status).toBe(200);
    expect(drain.inFlight).toBe(0);
    await drain.start();
    expect(drain.inFlight).toBe(1);
    server.close();
    await tracked.closed;
    expect([tracked.state, drain.inFlight]).toEqual(['closed', 0]);
    expect(await drain.shutdown()).toMatchObject({ outcome: 'clean', inFlightAtStart: 0 });
  });

  it('closes the listener at once when the controller never ran', async () => {
    const drain = new DrainController();
    const { server } = app();
    const tracked = trackHttpServer(drain, server);
    await listen(server);
    await drain.shutdown();
    await tracked.closed;
    expect(server.listening).toBe(false);
  });

  it('closes a listener the application opens after shutdown closed the server', async () => {
    const drain = await started();
    const { server } = app();
    const tracked = trackHttpServer(drain, server);
    // A start cut short: the shutdown comes before the application's listen().
    expect(await drain.shutdown()).toMatchObject({ outcome: 'clean' });
    await tracked.closed;
    const closing = once(server, 'close');
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    await closing;
    expect([server.listening, tracked.state]).toEqual([false, 'closed']);
  });

  it('checks its arguments and options', () => {
    const drain = new DrainController();
    const server = http.createServer();
    const check = (fn: () => unknown, message: string): void => {
      expect(fn).toThrow(ConfigurationError);
      expect(fn).toThrow(message);
    };
    check(
      () => trackHttpServer(drain, server, { shutdownDelayMs: -1 }),
      'Expected `shutdownDelayMs` to be a finite number from 0 up, got `-1` (number)',
    );
    check(
      () => trackHttpServer(drain, server, { shutdownDelayMs: '5s' as unknown as number }),
      'Expected `shutdownDelayMs` to be a finite number from 0 up, got `"5s"` (string)',
    );
    check(
      () => trackHttpServer(drain, server, { shutdownDelay: 5 } as never),
      'Unknown option `shutdownDelay` for trackHttpServer (known options: shutdownDelayMs)',
    );
    check(
      () => trackHttpServer({} as DrainController, server),
      'Expected `drain` to be a DrainController, got `[object]` (object)',
    );
    check(
      () => trackHttpServer(drain, http2.createServer() as unknown as http.Server),
      'Expected `server` to be a node:http or node:https server (HTTP/2 is not supported), got `[object]` (object)',
    );
    trackHttpServer(drain, server);
    check(() => trackHttpServer(drain, server), 'This server is tracked already');
  });
});
