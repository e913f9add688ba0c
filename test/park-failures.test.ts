/**
 * The park at shutdown under failing stores: retried with backoff while the budget allows, reported
 * for what it was, and followed by a sweep that catches workflows that became active meanwhile.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  CoordinatorUnavailableError,
  DrainController,
  type DrainControllerOptions,
  type WorkflowStore,
} from '../src/index.js';
import { MemoryBackend, MemoryCoordinator, MemoryWorkflowStore } from '../src/adapters/memory/index.js';
import { over } from './support/stores.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(cleanup.splice(0).map((f) => f()));
});

function member(options: DrainControllerOptions & { store: WorkflowStore }): DrainController {
  const coordinator = new MemoryCoordinator({ backend: new MemoryBackend() });
  const drain = new DrainController({ group: 'g', shutdownTimeoutMs: 3_000, coordinator, ...options });
  cleanup.push(
    () => drain.shutdown({ force: true }),
    () => coordinator.close(),
  );
  return drain;
}

function seed(host: MemoryWorkflowStore, count: number): string[] {
  const ids = Array.from({ length: count }, (_, i) => `w${String(i).padStart(3, '0')}`);
  for (const id of ids) host.add(id, 'running');
  return ids;
}

describe('park at shutdown: a failing call does not end the park', () => {
  it('a park batch that fails twice is retried, and every workflow is parked', async () => {
    const host = new MemoryWorkflowStore();
    const ids = seed(host, 12);
    let failures = 0;
    const store = over(host, {
      park: (batch, f, o) => {
        if (batch.includes('w005') && failures < 2) {
          failures++;
          return Promise.reject(new CoordinatorUnavailableError('the host database is busy'));
        }
        return host.park(batch, f, o);
      },
    });
    const drain = member({ store, batchSize: 5 });
    await drain.start();
    await drain.whenResumed();
    const report = await drain.shutdown();
    expect(report).toMatchObject({ handOff: 'parked', parked: 12, outcome: 'failed' });
    expect(report.phases.find((p) => p.name === 'park')?.outcome).toBe('ok');
    expect(report.errors.filter((e) => e.phase === 'park')).toHaveLength(2);
    for (const id of ids) expect(host.get(id)).toMatchObject({ status: 'paused', parked: true });
  });

  it('a listing that fails once is retried', async () => {
    const host = new MemoryWorkflowStore();
    seed(host, 3);
    let failed = false;
    const store = over(host, {
      listActive: (o) => {
        if (!failed) {
          failed = true;
          return Promise.reject(new CoordinatorUnavailableError('connection reset'));
        }
        return host.listActive(o);
      },
    });
    const drain = member({ store });
    await drain.start();
    await drain.whenResumed();
    const report = await drain.shutdown();
    expect(report).toMatchObject({ handOff: 'parked', parked: 3 });
  });

  it('a store that keeps failing is reported as `error`, not as a timeout', async () => {
    const host = new MemoryWorkflowStore();
    seed(host, 3);
    const store = over(host, {
      listActive: () => Promise.reject(new CoordinatorUnavailableError('down for good')),
    });
    const drain = member({ store, shutdownTimeoutMs: 800 });
    await drain.start();
    await drain.whenResumed();
    const report = await drain.shutdown();
    expect(report.handOff).toBe('error');
    expect(report.phases.find((p) => p.name === 'park')?.outcome).toBe('error');
    expect(report.errors.filter((e) => e.phase === 'park').length).toBeGreaterThan(1);
  });

  it('a workflow that becomes active below the cursor during the park is caught by the sweep', async () => {
    const host = new MemoryWorkflowStore();
    seed(host, 10);
    host.add('a-early', 'paused');
    let pages = 0;
    const store = over(host, {
      listActive: async (o) => {
        const page = await host.listActive(o);
        // While the first pass is on its second page, a user resumes a workflow whose id sorts first.
        if (++pages === 2) host.setStatus('a-early', 'running');
        return page;
      },
    });
    const drain = member({ store, batchSize: 4 });
    await drain.start();
    await drain.whenResumed();
    const report = await drain.shutdown();
    expect(report).toMatchObject({ handOff: 'parked', parked: 11 });
    expect(host.get('a-early')).toMatchObject({ status: 'paused', parked: true });
  });

  it('a forced park is recorded as `forced`, never as a timeout', async () => {
    const host = new MemoryWorkflowStore();
    seed(host, 3);
    const late: { drain?: DrainController } = {};
    const store = over(host, {
      park: () => {
        void late.drain?.shutdown({ force: true });
        return new Promise(() => {});
      },
    });
    const drain = (late.drain = member({ store }));
    await drain.start();
    await drain.whenResumed();
    const report = await drain.shutdown();
    expect(report.handOff).toBe('aborted');
    expect(report.phases.find((p) => p.name === 'park')?.outcome).toBe('forced');
  });

  it('the park tells the store to give up when the shutdown gives up on it', async () => {
    const host = new MemoryWorkflowStore();
    seed(host, 2);
    let seen: AbortSignal | undefined;
    const store = over(host, {
      park: (_ids, _f, o) => {
        seen = o?.signal;
        return new Promise(() => {});
      },
    });
    const drain = member({ store, shutdownTimeoutMs: 500 });
    await drain.start();
    await drain.whenResumed();
    const report = await drain.shutdown();
    expect(report.handOff).toBe('aborted');
    expect(seen?.aborted).toBe(true);
  });

  it('the fence goes up before the first read of the park', async () => {
    const host = new MemoryWorkflowStore();
    seed(host, 1);
    const calls: string[] = [];
    const store = over(host, {
      raiseFence: (f, o) => {
        calls.push(`fence ${f.token}`);
        return host.raiseFence(f, o);
      },
      listActive: (o) => {
        calls.push('list');
        return host.listActive(o);
      },
    });
    const drain = member({ store });
    await drain.start();
    await drain.whenResumed();
    calls.length = 0;
    const report = await drain.shutdown();
    expect(calls[0]).toBe(`fence ${report.token}`);
    expect(calls[1]).toBe('list');
  });
});

describe('resume at start: the fence goes up before the first read', () => {
  it('even when nothing is parked, so a write delayed under an older token is rejected', async () => {
    const host = new MemoryWorkflowStore();
    host.add('w1', 'running');
    const raised: (bigint | undefined)[] = [];
    const store = over(host, {
      raiseFence: (f, o) => {
        raised.push(f.token);
        return host.raiseFence(f, o);
      },
    });
    const drain = member({ store });
    await drain.start();
    const resumed = await drain.whenResumed();
    expect(resumed).toMatchObject({ resumed: 0, rounds: 1, complete: true });
    // Once by the start gate (crash recovery), once by the resume round.
    expect(raised).toHaveLength(2);
    const token = raised[1] as bigint;
    expect(token > (raised[0] as bigint)).toBe(true);
    // A park sent by an earlier lock holder, delayed in flight, lands now: it is refused.
    await expect(host.park(['w1'], { memberId: 'earlier', token: token - 1n })).rejects.toMatchObject({
      code: 'ERR_STALE_TOKEN',
    });
    expect(host.get('w1')).toMatchObject({ status: 'running', parked: false });
  });
});
