/**
 * On the real servers: a lease lost while the last member parks (its connection killed) stops the
 * park before the next batch, and no unfenced write follows (invariant 8).
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { DrainController } from '../src/index.js';
import type { Coordinator, Fence, WorkflowStore } from '../src/index.js';
import { MemoryWorkflowStore } from '../src/adapters/memory/index.js';
import { PostgresCoordinator } from '../src/adapters/postgres/index.js';
import { RedisCoordinator } from '../src/adapters/redis/index.js';
import { testSchema, urlWithApplicationName } from './fixtures/postgres-setup.js';
import { REDIS_URL, uniqueName } from './support/env.js';

/** A host store whose park takes a while, and which tells the test when the first batch is in. */
function slowStore(
  inner: MemoryWorkflowStore,
  onFirstBatch: () => Promise<void>,
): WorkflowStore & { fences: Fence[] } {
  const fences: Fence[] = [];
  let batches = 0;
  return {
    fences,
    capabilities: inner.capabilities,
    listActive: (o) => inner.listActive(o),
    listParked: (o) => inner.listParked(o),
    unpark: (ids, fence, o) => inner.unpark(ids, fence, o),
    raiseFence: (fence, o) => inner.raiseFence(fence, o),
    notePaused: (ids, o) => inner.notePaused(ids, o),
    async park(ids, fence, o) {
      fences.push(fence);
      const results = await inner.park(ids, fence, o);
      if (++batches === 1) await onFirstBatch();
      return results;
    },
  };
}

async function lastMemberLosesLease(coordinator: Coordinator, kill: () => Promise<void>): Promise<void> {
  const host = new MemoryWorkflowStore();
  for (let i = 0; i < 20; i++) host.add(`w${String(i).padStart(2, '0')}`);
  const store = slowStore(host, async () => {
    await kill();
    // The lease's signal must abort (connection gone) before the park loop asks for the next batch.
    await new Promise<void>((resolve) => {
      if (lost.aborted) resolve();
      else lost.addEventListener('abort', () => resolve(), { once: true });
    });
  });
  let lost!: AbortSignal;
  const original = coordinator.acquire.bind(coordinator);
  coordinator.acquire = async (name, options) => {
    const lease = await original(name, options);
    lost = lease.signal;
    return lease;
  };
  const drain = new DrainController({
    group: uniqueName('lapse'),
    coordinator,
    store,
    batchSize: 5,
    shutdownTimeoutMs: 10_000,
  });
  await drain.start();
  await drain.whenResumed();
  const report = await drain.shutdown();
  expect(report).toMatchObject({ handOff: 'lease-lost', lastMember: true, parked: 5 });
  expect(report.errors.map((e) => (e.error as Error).name)).toContain('LockLostError');
  expect(host.stats.parks).toBe(5);
  // Every write carried the lease's token: nothing unfenced followed the loss.
  expect(store.fences).toHaveLength(1);
  expect(store.fences[0]?.token).toBe(report.token);
  expect(typeof report.token).toBe('bigint');
  await coordinator.close();
}

describe('a lease lost during a long park stops it before the next batch', () => {
  const admin = new Redis(REDIS_URL, { lazyConnect: true });
  afterAll(() => admin.disconnect());

  it('RedisCoordinator: CLIENT KILL of its connection', async () => {
    const name = uniqueName('gd-lapse').slice(0, 40);
    const coordinator = new RedisCoordinator({
      url: REDIS_URL,
      connectionName: name,
      keyPrefix: `${uniqueName('gd-lapse')}:`,
    });
    await lastMemberLosesLease(coordinator, async () => {
      const clients = (await admin.client('LIST')) as string;
      const line = clients.split('\n').find((l) => l.includes(`name=${name} `));
      const id = /id=(\d+)/.exec(line ?? '')?.[1];
      expect(id).toBeDefined();
      await admin.client('KILL', 'ID', id as string);
    });
  });

  it('PostgresCoordinator: pg_terminate_backend of its session', async () => {
    const db = await testSchema('gd_lapse');
    try {
      const app = uniqueName('gd-lapse').slice(0, 60);
      const coordinator = new PostgresCoordinator({ url: urlWithApplicationName(app), schema: db.schema });
      await lastMemberLosesLease(coordinator, async () => {
        const { rows } = await db.pool.query<{ n: string }>(
          'SELECT count(pg_terminate_backend(pid))::text AS n FROM pg_stat_activity WHERE application_name = $1',
          [app],
        );
        expect(rows[0]?.n).toBe('1');
      });
    } finally {
      await db.drop();
    }
  });
});
