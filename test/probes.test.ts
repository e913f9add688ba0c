import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DrainController, createProbeHandler } from '../src/index.js';

let server: http.Server | undefined;
afterEach(async () => {
  server?.close();
  server = undefined;
});

async function serve(drain: DrainController): Promise<string> {
  const probes = createProbeHandler(drain);
  server = http.createServer((req, res) => {
    if (!probes(req, res)) res.writeHead(404).end('app');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('createProbeHandler()', () => {
  it('readiness fails from the first moment of shutdown; liveness holds while draining', async () => {
    const drain = new DrainController();
    const base = await serve(drain);
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    await drain.start();
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ok: true, state: 'running', inFlight: 0 });

    let release!: () => void;
    void drain.track(() => new Promise<void>((r) => (release = r)));
    const shutdown = drain.shutdown();
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    const live = await fetch(`${base}/livez`);
    expect(live.status).toBe(200);
    expect(await live.json()).toEqual({ ok: true, state: 'draining', inFlight: 1 });
    release();
    await shutdown;
    expect((await fetch(`${base}/other`)).status).toBe(404);
  });

  it('checks its options', () => {
    expect(() => createProbeHandler(new DrainController(), { readinessPath: '' })).toThrow(
      'Expected `readinessPath` to be a non-empty string, got `""` (string)',
    );
  });
});
