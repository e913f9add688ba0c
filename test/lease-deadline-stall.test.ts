/**
 * No park is written under a lease past its local deadline, even when the event loop stalls between
 * listing the active workflows and parking them (found by the chaos harness: chaos/,
 * docs/reliability.md), pinned on the real SQLite adapters with a second process.
 *
 * A park sent after the lease's local deadline, on every backend, with the `stall-at-park` and
 *    `freeze-at-handoff` faults (`npm run chaos -- --backend redis --members 2 --seconds 30 --seed 41`,
 *    or `--backend postgres --members 3 --seconds 60 --seed 102`; a seed replays the schedule, not the
 *    timing, so it may take a few runs). The hand-off checks `lease.signal.aborted` before each batch,
 *    but the signal aborts from a timer. When the event loop stalls (a GC pause, a starved CPU)
 *    between the listing of active workflows and the park, the deadline passes, the timer has not run
 *    yet when the loop comes back, and the park goes out under a lease another member may hold by now:
 *    here a second process takes the lock, finds nothing parked, and is done; the stale park then lands
 *    (the store accepts it: the newer holder wrote nothing) and the workflows are parked behind its
 *    back. The lease's `deadline` is part of the contract for this: nothing may be written past it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteDatabase, SqliteCoordinator, SqliteWorkflowStore } from '../src/adapters/sqlite/index.js';
import {
  type Coordinator,
  DrainController,
  type Fence,
  type ListOptions,
  type Page,
  type WorkflowStore,
} from '../src/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/sqlite-process.ts', import.meta.url));
const folder = mkdtempSync(join(tmpdir(), 'graceful-drain-lease-deadline-stall-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(folder, { recursive: true, force: true });
});

/** Blocks this thread for `ms`, as a long GC pause would: no timer runs meanwhile. */
function block(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

describe('DrainController hand-off, when the event loop stalls past the lease between listing and parking', () => {
  it('parks nothing once the lease deadline has passed, though the lease signal has not aborted yet', async () => {
    const path = join(folder, 'stall.db');
    // The adapters' own choice of driver: node:sqlite where the runtime has it, better-sqlite3 otherwise.
    const host = await openSqliteDatabase(path);
    host.exec(`CREATE TABLE workflows (id TEXT PRIMARY KEY, status TEXT NOT NULL)`);
    host.exec(`INSERT INTO workflows VALUES ('a', 'running'), ('b', 'running')`);
    const real = new SqliteWorkflowStore({ database: host, table: 'workflows' });
    const coordinator = new SqliteCoordinator({ path });
    const lock = 'stall:start-stop';
    const parks: { token: bigint | undefined; deadlinePassed: boolean }[] = [];
    let held: { readonly deadline: number } | undefined;
    let otherToken: bigint | undefined;
    // The store of the member that stops: its listing of active workflows comes back, then its event
    // loop stalls until another process has taken the start-stop lock (after ours expired), looked for
    // parked workflows and found none, released it and exited.
    const store: WorkflowStore = {
      capabilities: real.capabilities,
      raiseFence: (f, o) => real.raiseFence(f, o),
      notePaused: (ids, o) => real.notePaused(ids, o),
      listActive: async (options: ListOptions): Promise<Page<string>> => {
        const page = await real.listActive(options);
        const out = join(folder, 'other.out');
        const fd = openSync(out, 'w');
        const other = spawn(process.execPath, ['--import', 'tsx', fixture, 'once', path, lock], {
          cwd: root,
          stdio: ['ignore', fd, 'inherit'],
        });
        closeSync(fd);
        children.push(other);
        const until = performance.now() + 20_000;
        while (
          !(existsSync(out) && readFileSync(out, 'utf8').includes('ready')) &&
          performance.now() < until
        ) {
          block(50);
        }
        otherToken = BigInt(readFileSync(out, 'utf8').trim().split(' ')[1] ?? '0');
        return page;
      },
      park: (ids: readonly string[], fence: Fence) => {
        parks.push({
          token: fence.token,
          deadlinePassed: held !== undefined && performance.now() >= held.deadline,
        });
        return real.park(ids, fence);
      },
      listParked: (options) => real.listParked(options),
      unpark: (ids, fence) => real.unpark(ids, fence),
    };
    const recording: Coordinator = {
      capabilities: coordinator.capabilities,
      acquire: async (name, options) => {
        const lease = await coordinator.acquire(name, options);
        if (name === lock) held = lease;
        return lease;
      },
      join: (group, memberId, options) => coordinator.join(group, memberId, options),
      members: (group) => coordinator.members(group),
      close: () => coordinator.close(),
    };
    const drain = new DrainController({
      group: 'stall',
      memberId: 'stopper',
      coordinator: recording,
      store,
      lockTtlMs: 300,
      memberTtlMs: 300,
      shutdownTimeoutMs: 30_000,
    });
    try {
      await drain.start();
      await drain.whenResumed();
      const report = await drain.shutdown();
      // The other process did get the lock while this member stalled: a newer token.
      expect(otherToken).toBeGreaterThan(report.token ?? 0n);
      expect(parks).toEqual([]);
      expect(report.handOff).toBe('lease-lost');
      expect(report.parked).toBe(0);
      expect(host.prepare(`SELECT count(*) AS n FROM workflows WHERE status = 'running'`).get()).toEqual({
        n: 2,
      });
    } finally {
      await coordinator.close();
      await real.close();
      host.close();
    }
  }, 40_000);
});
