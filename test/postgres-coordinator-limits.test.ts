/**
 * PostgresCoordinator's limits, defects found in review, each test failing before its fix: a `ttlMs` shorter
 * than a round trip was accepted, and its watchdog dropped the session with every other lease on it
 * (src/adapters/postgres/coordinator.ts, checkTtl); a name over the btree row limit failed as an outage
 * (`CoordinatorUnavailableError`) instead of a `ConfigurationError` naming it (checkNameSize). The Redis
 * defects of the same review are tested in test/redis-coordinator.test.ts, with the other Redis tests.
 */
import { once } from 'node:events';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PostgresCoordinator } from '../src/adapters/postgres/index.js';
import type { Coordinator, Lease } from '../src/coordinator.js';
import { ConfigurationError, CoordinatorUnavailableError } from '../src/errors.js';
import { randomId } from '../src/internal/time.js';
import { testSchema, type TestSchema } from './fixtures/postgres-setup.js';
import { POSTGRES_URL } from './support/env.js';

const made: Coordinator[] = [];
afterEach(async () => {
  await Promise.all(made.splice(0).map((c) => c.close()));
});

/** Resolves once `signal` aborts; rejects when it has not within `ms`. */
async function aborted(signal: AbortSignal, ms: number): Promise<void> {
  if (signal.aborted) return;
  await Promise.race([
    once(signal, 'abort'),
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error(`not aborted within ${ms} ms`)), ms).unref(),
    ),
  ]);
}

describe('PostgresCoordinator', () => {
  let db: TestSchema;
  beforeAll(async () => {
    db = await testSchema('gd_review_coord');
  });
  afterAll(async () => {
    await db.drop();
  });

  function pgCoordinator(): PostgresCoordinator {
    const c = new PostgresCoordinator({ url: POSTGRES_URL, schema: db.schema });
    made.push(c);
    return c;
  }

  it('a lease with a ttlMs shorter than a round trip is refused, rather than dropping the session with every other lease on it', async () => {
    const c = pgCoordinator();
    const held = await c.acquire(`lock-${randomId()}`, { ttlMs: 10_000, timeoutMs: 2000 });
    const outcome = await c.acquire(`lock-${randomId()}`, { ttlMs: 0.001, timeoutMs: 2000 }).then(
      (lease) => lease,
      (error: unknown) => error,
    );
    if (outcome instanceof Error) {
      expect(outcome).toBeInstanceOf(ConfigurationError);
    } else {
      // Accepted: it may lose itself, but never the unrelated lease held on the same session.
      await aborted((outcome as Lease).signal, 2000).catch(() => {});
    }
    expect(held.signal.aborted ? String(held.signal.reason) : 'held').toBe('held');
  });

  it('refuses a ttlMs below 100 ms in acquire() and join(), naming ttlMs and the value', async () => {
    const c = pgCoordinator();
    for (const call of [
      () => c.acquire(`lock-${randomId()}`, { ttlMs: 99, timeoutMs: 2000 }),
      () => c.join(`group-${randomId()}`, 'm1', { ttlMs: 99 }),
    ]) {
      const error = await call().then(
        () => 'accepted',
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toMatch(/`ttlMs`.*100.*`99`/);
    }
    const lease = await c.acquire(`lock-${randomId()}`, { ttlMs: 100, timeoutMs: 2000 });
    await lease.release();
  });

  it('a lock name the index cannot take (3000 characters) is refused with a ConfigurationError naming it, not as an outage', async () => {
    const c = pgCoordinator();
    const name = Array.from({ length: 100 }, () => randomId().replaceAll('-', ''))
      .join('')
      .slice(0, 3000);
    const outcome = await c.acquire(name, { ttlMs: 10_000, timeoutMs: 2000 }).then(
      (lease) => lease,
      (error: unknown) => error,
    );
    // A name it cannot take is a ConfigurationError at most; CoordinatorUnavailableError says the server failed.
    expect(outcome).not.toBeInstanceOf(CoordinatorUnavailableError);
    if (!(outcome instanceof Error)) expect((outcome as Lease).token).toBe(1n);
    expect(outcome).toBeInstanceOf(ConfigurationError);
    expect((outcome as Error).message).toMatch(/`name`.*1000 bytes.*3000 bytes/);
    // The limit is in UTF-8 bytes: 1000 of them are taken.
    const lease = await c.acquire('é'.repeat(500), { ttlMs: 10_000, timeoutMs: 2000 });
    expect(lease.token).toBe(1n);
    await lease.release();
  });

  it('a group or member id over 1000 UTF-8 bytes is refused, naming it, before anything is sent', async () => {
    // No server behind this URL: a ConfigurationError comes from the check, not from a connection.
    const c = new PostgresCoordinator({ url: 'postgres://127.0.0.1:1/none', schema: db.schema });
    made.push(c);
    const long = 'é'.repeat(501); // 501 characters, 1002 bytes
    for (const [call, argument] of [
      [() => c.join(long, 'm1', { ttlMs: 10_000 }), 'group'],
      [() => c.join('g', long, { ttlMs: 10_000 }), 'memberId'],
      [() => c.members(long), 'group'],
      [() => c.acquire(long, { ttlMs: 10_000, timeoutMs: 0 }), 'name'],
    ] as const) {
      const error = await (call as () => Promise<unknown>)().then(
        () => 'accepted',
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toMatch(new RegExp(`\`${argument}\`.*1002 bytes`));
    }
  });
});
