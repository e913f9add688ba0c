import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DrainController } from './controller.js';
import { checkName, checkOptionsObject, hasMethods, invalid } from './validate.js';

/** Options of {@link createProbeHandler}. */
export interface ProbeHandlerOptions {
  /** Readiness path: 200 while running, 503 from the first moment of shutdown. @defaultValue `'/readyz'` */
  readonly readinessPath?: string;
  /** Liveness path: 200 while it works (draining too), 503 once `failed`. @defaultValue `'/livez'` */
  readonly livenessPath?: string;
}

/** A `node:http` request handler: returns `true` when it answered the request, `false` to pass it on. */
export type ProbeHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

/**
 * Kubernetes probes for a `node:http` server you own: readiness fails from the first moment of shutdown,
 * liveness holds while draining. The handler answers its two paths and returns `false` for the rest.
 *
 * @throws `ConfigurationError` for something that is not a `DrainController`, or a bad option.
 *
 * @example
 * ```ts
 * const probes = createProbeHandler(drain);
 * http.createServer((req, res) => probes(req, res) || app(req, res)).listen(8080);
 * ```
 */
export function createProbeHandler(drain: DrainController, options?: ProbeHandlerOptions): ProbeHandler {
  // Checked now: a bad one would otherwise throw inside the server's request handler, or answer forever.
  if (!hasMethods(drain, 'shutdown') || !('ready' in drain) || !('state' in drain)) {
    invalid('drain', 'a DrainController', drain);
  }
  const o = checkOptionsObject('createProbeHandler', options, ['readinessPath', 'livenessPath']);
  const pathOf = (name: string, fallback: string): string => {
    if (o[name] === undefined) return fallback;
    const path = checkName(name, o[name]);
    if (!path.startsWith('/')) invalid(name, 'a path starting with "/"', path);
    return path;
  };
  const readinessPath = pathOf('readinessPath', '/readyz');
  const livenessPath = pathOf('livenessPath', '/livez');
  return (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    let ok: boolean;
    if (path === readinessPath) ok = drain.ready;
    else if (path === livenessPath) ok = drain.state !== 'failed';
    else return false;
    const body = JSON.stringify({ ok, state: drain.state, inFlight: drain.inFlight });
    res.writeHead(ok ? 200 : 503, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  };
}
