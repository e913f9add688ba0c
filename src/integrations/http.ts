/**
 * `graceful-drain/http`: a `node:http` (or `node:https`) server drained by a `DrainController`, so that
 * a rolling stop drops no request. Frameworks built on `node:http` (Express, Koa, Fastify's
 * `fastify.server`, ...) work through the server they listen with.
 *
 * On shutdown:
 *
 * 1. readiness fails at once (`drain.ready` turns false), but the listener stays open for
 *    `shutdownDelayMs`: the load balancers go on routing here until they learn the pod is leaving, and
 *    every request they send is served. From now on every response says `Connection: close`, so each
 *    client lets its keep-alive socket go after its next response;
 * 2. then the listener closes, and the keep-alive sockets that sit idle are closed: only idle ones, no
 *    request in progress and none being parsed (Node's `closeIdleConnections()`), so a request already
 *    read is answered, never reset. A socket that becomes idle later (a response whose headers went out
 *    before shutdown) is closed once its response is done;
 * 3. requests in flight finish; the drain ends when the server has closed;
 * 4. at the drain deadline (the controller's `signal` aborts, or the shutdown is forced) every
 *    remaining socket is destroyed, and the report names the requests that were cut.
 *
 * How requests are counted. `track()` refuses work from the first moment of shutdown, yet requests
 * keep arriving for `shutdownDelayMs` after it. So the server itself is one tracked task, labelled
 * `http server`: it is tracked as soon as the controller runs and settles when the server has closed
 * (its listener closed and every connection ended). A request that arrives while intake is open is
 * also tracked on its own, labelled with its method and path (`GET /orders`, never the query string);
 * one that arrives after shutdown began is carried by the server task. The drain therefore waits for
 * every request, and the report's `inFlightAtStart`, `aborted` and `stragglers` count the server task
 * with the requests. The delay is held by that task rather than by a waiting intake stopper: a
 * stopper that waited would hold back the stoppers registered after it (a queue consumer would keep
 * receiving deliveries only to requeue them), and its overrun would be reported as a stopper error
 * rather than as the requests it cut. The stopper this module registers returns at once.
 *
 * Liveness: the listener closes, so a liveness probe on the same port stops answering once the delay
 * is over. Serve the probes (`createProbeHandler`) from a server of their own, unref'd, to have them
 * answer until the process exits.
 *
 * Upgraded connections (WebSocket) are the application's to close (on `stopping`); the drain waits for
 * them like any connection, until the deadline destroys them. HTTP/2 servers are not supported.
 *
 * @packageDocumentation
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import createDebug from 'debug';
import type { DrainController } from '../controller.js';
import { ConfigurationError } from '../errors.js';
import type { DrainState } from '../types.js';
import { checkNonNegative, checkOptionsObject, invalid } from '../validate.js';

const log = createDebug('graceful-drain:http');

/** A server `trackHttpServer` can drain: `node:http` or `node:https` (HTTP/1.1). */
export type DrainableServer = Server | HttpsServer;

/** Options of {@link trackHttpServer}. */
export interface TrackHttpServerOptions {
  /**
   * How long the listener stays open after shutdown begins, serving every request, while readiness
   * already fails: the time the load balancers take to stop routing here (endpoint removal in
   * Kubernetes, target deregistration in a cloud load balancer). `0` closes the listener at once, for
   * a process no load balancer routes to (local runs, tests). It is part of the drain, so it must fit
   * well inside the controller's drain budget.
   * @defaultValue `5_000`
   */
  readonly shutdownDelayMs?: number;
}

/**
 * Where a tracked server is in its shutdown:
 *
 * - `serving`: no shutdown yet;
 * - `delaying`: shutdown began; the listener is still open for `shutdownDelayMs`;
 * - `closing`: the listener is closed; requests in flight finish, their connections close;
 * - `closed`: every connection has ended (or was destroyed at the drain deadline).
 */
export type HttpServerState = 'serving' | 'delaying' | 'closing' | 'closed';

/** A server tracked by {@link trackHttpServer}. */
export interface TrackedHttpServer<S extends DrainableServer = DrainableServer> {
  /** The server, as given. */
  readonly server: S;
  /** Where the server is in its shutdown; see {@link HttpServerState}. */
  readonly state: HttpServerState;
  /** Requests in flight on this server (the server task not included). */
  readonly inFlight: number;
  /** Resolves when the server has closed: its listener closed and every connection ended. Never rejects. */
  readonly closed: Promise<void>;
}

const tracked = new WeakSet<object>();
const serverMethods = ['close', 'closeIdleConnections', 'closeAllConnections', 'prependListener', 'on'];

/**
 * Tracks every request of `server` with `drain`, and drains the server on shutdown: readiness fails at
 * once while the listener stays open for `shutdownDelayMs`; then the listener closes, idle keep-alive
 * sockets close, and requests in flight finish; responses during all of it say `Connection: close`; at
 * the drain deadline what is left is destroyed. Call it once per server, before it serves traffic;
 * the controller may be started before or after.
 *
 * @param drain - the controller.
 * @param server - a `node:http` or `node:https` server (Express: the value of `app.listen()`).
 * @param options - see {@link TrackHttpServerOptions}.
 * @throws `ConfigurationError` for a bad argument or option (naming it and the value), or a server
 * tracked already.
 *
 * @example
 * ```ts
 * import http from 'node:http';
 * import { DrainController, installSignalHandlers } from 'graceful-drain';
 * import { trackHttpServer } from 'graceful-drain/http';
 *
 * const drain = new DrainController({ shutdownTimeoutMs: 25_000 });
 * const server = http.createServer((req, res) => res.end('hello\n'));
 * trackHttpServer(drain, server, { shutdownDelayMs: 5_000 });
 * installSignalHandlers(drain);
 * await drain.start();
 * server.listen(8080);
 * ```
 */
export function trackHttpServer<S extends DrainableServer>(
  drain: DrainController,
  server: S,
  options?: TrackHttpServerOptions,
): TrackedHttpServer<S> {
  const d = drain as Partial<DrainController> | null;
  if (
    d === null ||
    typeof d !== 'object' ||
    typeof d.track !== 'function' ||
    typeof d.onStopIntake !== 'function' ||
    typeof d.on !== 'function'
  ) {
    invalid('drain', 'a DrainController', drain);
  }
  const s = server as unknown as Record<string, unknown> | null;
  if (s === null || typeof s !== 'object' || serverMethods.some((m) => typeof s[m] !== 'function')) {
    invalid('server', 'a node:http or node:https server (HTTP/2 is not supported)', server);
  }
  const o = checkOptionsObject('trackHttpServer', options, ['shutdownDelayMs']);
  const delayMs =
    o.shutdownDelayMs === undefined ? 5_000 : checkNonNegative('shutdownDelayMs', o.shutdownDelayMs);
  if (tracked.has(server)) {
    throw new ConfigurationError('This server is tracked already: call trackHttpServer() once per server');
  }
  tracked.add(server);
  return new ServerDrain(drain, server, delayMs);
}

/** The label of a request in the report: its method and path, never the query string. */
function labelOf(req: IncomingMessage): string {
  return `${req.method ?? 'GET'} ${(req.url ?? '/').split('?', 1)[0] ?? '/'}`;
}

class ServerDrain<S extends DrainableServer> implements TrackedHttpServer<S> {
  readonly server: S;
  readonly closed: Promise<void>;
  readonly #drain: DrainController;
  readonly #delayMs: number;
  /** Responses in flight, to say `Connection: close` on those still to send their headers. */
  readonly #responses = new Set<ServerResponse>();
  /** Every connection opened since tracking began, to destroy at the deadline. */
  readonly #sockets = new Set<Socket>();
  readonly #unregister: () => void;
  #state: HttpServerState = 'serving';
  /** Settles the server task; set while it is tracked. */
  #release: (() => void) | undefined;
  #resolveClosed!: () => void;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(drain: DrainController, server: S, delayMs: number) {
    this.server = server;
    this.#drain = drain;
    this.#delayMs = delayMs;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    const http = server as Server;
    http.prependListener('request', this.#onRequest);
    http.on('connection', this.#onConnection);
    http.on('close', this.#onClose);
    drain.on('stateChange', this.#onStateChange);
    // The shared `signal` aborts at the drain deadline, or at once when the shutdown is forced.
    drain.context.signal.addEventListener('abort', this.#destroy, { once: true });
    this.#unregister = drain.onStopIntake(() => this.#beginShutdown());
    this.#hold();
    if (drain.context.signal.aborted) this.#destroy();
  }

  get state(): HttpServerState {
    return this.#state;
  }

  get inFlight(): number {
    return this.#responses.size;
  }

  /** Tracks the server task while the controller runs (once). */
  #hold(): void {
    if (this.#release !== undefined || this.#state !== 'serving' || !this.#drain.ready) return;
    void this.#drain.track(() => new Promise<void>((resolve) => (this.#release = resolve)), {
      label: 'http server',
    });
  }

  readonly #onStateChange = ({ to }: { readonly to: DrainState }): void => {
    if (to === 'running') this.#hold();
    else if (to === 'draining') this.#beginShutdown();
  };

  readonly #onConnection = (socket: Socket): void => {
    const sockets = this.#sockets;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };

  readonly #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const responses = this.#responses;
    responses.add(res);
    const done = (): void => {
      responses.delete(res);
      // A keep-alive socket whose headers went out before shutdown: close it now that it is idle.
      if (this.#state === 'closing') this.server.closeIdleConnections();
    };
    const drain = this.#drain;
    if (drain.ready) {
      this.#hold();
      // Counted now; settles when the response is done or its connection is gone.
      const settled = (resolve: () => void): void => {
        res.once('close', () => {
          done();
          resolve();
        });
      };
      void drain.track(() => new Promise<void>(settled), { label: labelOf(req) });
      return;
    }
    // Intake is closed (or not open yet): the server task carries this request.
    if (this.#release !== undefined) this.#beginShutdown();
    if (this.#state !== 'serving') res.setHeader('Connection', 'close');
    res.once('close', done);
  };

  /** Shutdown began: say `Connection: close` from now on, and close the listener after the delay. */
  #beginShutdown(): void {
    if (this.#state !== 'serving') return;
    this.#state = 'delaying';
    for (const res of this.#responses) if (!res.headersSent) res.setHeader('Connection', 'close');
    // Without a server task (the controller never ran) nothing waits for the delay: close at once.
    const delayMs = this.#release === undefined ? 0 : this.#delayMs;
    log(
      'shutdown began: %d request(s) in flight; closing the listener in %d ms',
      this.#responses.size,
      delayMs,
    );
    if (delayMs === 0) this.#closeListener();
    else this.#timer = setTimeout(() => this.#closeListener(), delayMs);
  }

  #closeListener(): void {
    if (this.#state !== 'delaying' && this.#state !== 'serving') return;
    this.#state = 'closing';
    clearTimeout(this.#timer);
    const server = this.server;
    log('closing the listener; %d request(s) in flight', this.#responses.size);
    if (server.listening) server.close();
    // Never listened: no 'close' event will come.
    else if (this.#sockets.size === 0) this.#onClose();
    // server.close() closes the idle keep-alive sockets already (Node >= 19); this also covers a
    // listener the application closed itself.
    server.closeIdleConnections();
  }

  /** The drain deadline (or a forced shutdown): destroy every connection left. */
  readonly #destroy = (): void => {
    if (this.#state === 'closed') return;
    this.#closeListener();
    log('drain deadline: destroying %d connection(s)', this.#sockets.size);
    for (const socket of this.#sockets) socket.destroy();
    this.server.closeAllConnections();
  };

  readonly #onClose = (): void => {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#timer);
    log('server closed');
    this.#drain.off('stateChange', this.#onStateChange);
    this.#drain.context.signal.removeEventListener('abort', this.#destroy);
    this.#unregister();
    this.#release?.();
    this.#resolveClosed();
  };
}
