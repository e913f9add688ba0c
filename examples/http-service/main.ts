// A plain node:http service drained on SIGTERM: /readyz turns 503 at once, a slow request already in
// flight completes, new work is refused with 503, idle keep-alive sockets are closed, and the
// process exits 0 with the report. It drives itself: start, a slow request, SIGTERM to itself.
//   npx tsx examples/http-service/main.ts
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { DrainClosedError, DrainController, createProbeHandler, installSignalHandlers } from 'graceful-drain';
import { setTimeout as wait } from 'node:timers/promises';

// In production: a few seconds, so that the load balancer sees /readyz fail and stops routing here
// before the server stops accepting connections. Kept short for the demo.
const READINESS_GRACE_MS = 300;
const SLOW_REQUEST_MS = 800;

const t0 = performance.now();
const say = (line: string): void =>
  console.log(`[${String(Math.round(performance.now() - t0)).padStart(4)} ms] ${line}`);
// `signal` aborts at the drain deadline; timers/promises leaves no listener on it behind.
const sleep = (ms: number, signal?: AbortSignal): Promise<void> => wait(ms, undefined, { signal });

const drain = new DrainController({ shutdownTimeoutMs: 5_000 });
const probes = createProbeHandler(drain);
let requestStarted: () => void = () => {};

async function app(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname !== '/work') {
    res.writeHead(404).end();
    return;
  }
  const ms = Number(url.searchParams.get('ms') ?? '50');
  try {
    // Counted before anything else happens: a shutdown from now on waits for this request.
    const body = await drain.track(
      async ({ signal }) => {
        requestStarted();
        await sleep(ms, signal); // `signal` aborts only at the drain deadline
        return `worked ${ms} ms\n`;
      },
      { label: `${req.method} ${req.url}` },
    );
    // Finished during a drain: tell the client not to reuse this keep-alive connection.
    if (!drain.ready) res.setHeader('connection', 'close');
    res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
  } catch (error) {
    if (!(error instanceof DrainClosedError)) throw error;
    res.writeHead(503, { connection: 'close', 'retry-after': '1' }).end('shutting down\n');
  }
}

const server = http.createServer((req, res) => {
  if (probes(req, res)) return;
  app(req, res).catch((error: unknown) => {
    console.error(error);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  });
});

// Run first on shutdown. Readiness is already 503; keep accepting for a moment so the probe can say
// so, then stop accepting and close the keep-alive sockets that sit idle (Node 19+ does that in
// server.close() too; left alone, they would hold the server open until keepAliveTimeout). A socket
// with a request in flight closes after its response, which says `connection: close`.
const serverClosed = new Promise<void>((resolve) => {
  drain.onStopIntake(async (signal) => {
    await sleep(READINESS_GRACE_MS, signal);
    server.close(() => resolve());
    server.closeIdleConnections();
    say('stopped accepting connections; idle keep-alive sockets closed');
  });
});

let clientDone: Promise<void> = Promise.resolve();
installSignalHandlers(drain, {
  onShutdown: async (report) => {
    await serverClosed;
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
await once(server, 'listening');
const { port } = server.address() as AddressInfo;
say(`listening on http://127.0.0.1:${port}`);

// The client side of the scenario: a keep-alive agent, like a load balancer's.
const agent = new http.Agent({ keepAlive: true });
function get(path: string, keepAlive = true): Promise<{ status: number; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ port, path, host: '127.0.0.1', agent: keepAlive ? agent : false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
    });
    req.on('error', reject);
  });
}

say(`GET /readyz -> ${(await get('/readyz')).status}`);
say(`GET /work?ms=20 -> ${(await get('/work?ms=20')).status} (its keep-alive socket now sits idle)`);

const started = new Promise<void>((resolve) => (requestStarted = resolve));
clientDone = get(`/work?ms=${SLOW_REQUEST_MS}`).then((done) => {
  say(`slow request completed during the drain -> ${done.status} (connection: ${done.connection})`);
  agent.destroy();
});
await started;
say(`slow request in flight (${drain.inFlight}); sending SIGTERM to myself`);
process.kill(process.pid, 'SIGTERM');
await once(drain, 'stateChange');

// Probes open a new connection each time, like the kubelet's.
say(`during the drain: GET /readyz -> ${(await get('/readyz', false)).status}`);
say(`during the drain: GET /livez -> ${(await get('/livez', false)).status}`);
say(`during the drain: GET /work -> ${(await get('/work?ms=20', false)).status}`);
