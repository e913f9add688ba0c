/**
 * `graceful-drain/http`: a `node:http` or `node:https` server (and Express, Koa, Fastify's
 * `fastify.server`...) drained by a `DrainController`, so that a rolling stop drops no request. The
 * server is one tracked task (`http server`) from the moment the controller runs until it has closed;
 * requests that arrive while intake is open are tracked too (`GET /path`). See docs/integrations/http.md.
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
import { checkNonNegative, checkOptionsObject, hasMethods, invalid } from '../validate.js';

const log = createDebug('graceful-drain:http');

/** A server `trackHttpServer` can drain: `node:http` or `node:https` (HTTP/1.1). */
export type DrainableServer = Server | HttpsServer;

/** Options of {@link trackHttpServer}. */
export interface TrackHttpServerOptions {
  /**
   * How long the listener stays open after shutdown begins, serving every request while readiness
   * fails: the time load balancers take to stop routing here; `0` where none does. A server that is not
   * listening when shutdown begins is not kept waiting. @defaultValue `5_000`
   */
  readonly shutdownDelayMs?: number;
}

/**
 * Where a tracked server is in its shutdown: `serving`, `delaying` (the listener still open for
 * `shutdownDelayMs`), `closing` (the listener closed), `closed` (every connection ended or destroyed).
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

/**
 * Tracks every request of `server` with `drain`, and drains it on shutdown: readiness fails at once
 * while the listener stays open for `shutdownDelayMs`; then the listener and the idle keep-alive sockets
 * close and requests in flight finish, every response saying `Connection: close`; at the drain deadline
 * what is left is destroyed. Call it once per server, before it serves traffic.
 *
 * @param server - a `node:http` or `node:https` server (Express: the value of `app.listen()`).
 * @throws `ConfigurationError` for a bad argument or option, or a server tracked already.
 *
 * @example
 * ```ts
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
  if (!hasMethods(drain, 'track', 'onStopIntake', 'on')) invalid('drain', 'a DrainController', drain);
  if (!hasMethods(server, 'close', 'closeIdleConnections', 'closeAllConnections', 'prependListener', 'on')) {
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
  /** Responses in flight: those still to send their headers get `Connection: close`. */
  readonly #responses = new Set<ServerResponse>();
  /** Every connection opened since tracking began, destroyed at the deadline. */
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
    http.on('listening', this.#onListening);
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

  /** A listen() that comes after the listener was closed (a start cut short by a signal): closed at once. */
  readonly #onListening = (): void => {
    if (this.#state !== 'closing' && this.#state !== 'closed') return;
    log('the server started listening after shutdown closed it: closing it again');
    this.server.close();
  };

  readonly #onConnection = (socket: Socket): void => {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
  };

  readonly #onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    this.#responses.add(res);
    const done = (then?: () => void): void => {
      this.#responses.delete(res);
      // A keep-alive socket whose headers went out before shutdown: close it now that it is idle.
      if (this.#state === 'closing') this.server.closeIdleConnections();
      then?.();
    };
    if (this.#drain.ready) {
      this.#hold();
      // Counted now; settles when the response is done or its connection is gone.
      const response = () => new Promise<void>((resolve) => res.once('close', () => done(resolve)));
      void this.#drain.track(response, { label: labelOf(req) });
      return;
    }
    // Intake is closed (or not open yet): the server task carries this request.
    if (this.#release !== undefined) this.#beginShutdown();
    if (this.#state !== 'serving') res.setHeader('Connection', 'close');
    res.once('close', () => done());
  };

  /** Shutdown began: say `Connection: close` from now on, and close the listener after the delay. */
  #beginShutdown(): void {
    if (this.#state !== 'serving') return;
    this.#state = 'delaying';
    for (const res of this.#responses) if (!res.headersSent) res.setHeader('Connection', 'close');
    // No delay without a server task (the controller never ran: nothing waits for it), nor for a server
    // that is not listening (never listened, its listen() failed, or it was closed): none can reach it.
    const delayMs = this.#release === undefined || !this.server.listening ? 0 : this.#delayMs;
    const inFlight = this.#responses.size;
    log('shutdown began: %d request(s) in flight; closing the listener in %d ms', inFlight, delayMs);
    if (delayMs === 0) this.#closeListener();
    else this.#timer = setTimeout(() => this.#closeListener(), delayMs);
  }

  #closeListener(): void {
    if (this.#state !== 'delaying' && this.#state !== 'serving') return;
    this.#state = 'closing';
    clearTimeout(this.#timer);
    log('closing the listener; %d request(s) in flight', this.#responses.size);
    if (this.server.listening) this.server.close();
    else if (this.#sockets.size === 0) this.#onClose(); // never listened: no 'close' event will come
    // server.close() does it already (Node >= 19); this also covers a listener the app closed itself.
    this.server.closeIdleConnections();
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
