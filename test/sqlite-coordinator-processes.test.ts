/**
 * SqliteCoordinator shared by several processes of one host on one file, with real child processes.
 * Each test pins a defect found in review, and failed before its fix: a process's first acquire() waited
 * out operationTimeoutMs (5 s) instead of its timeoutMs while another process held the write lock (the
 * set-up took BEGIN IMMEDIATE even on a file set up already, and was not bounded by the call); and a
 * process whose /proc belongs to another pid namespace judged a live holder gone and took its lock.
 * The same set-up cases, in one process for both drivers, are in test/sqlite-coordinator.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SqliteCoordinator } from '../src/adapters/sqlite/index.js';
import { LockTimeoutError } from '../src/errors.js';
import { now, randomId } from '../src/internal/time.js';
import { ChildProcesses, type ReadyProcess } from './support/processes.js';

const WORKER = fileURLToPath(new URL('./fixtures/sqlite-coordinator-process.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'gd-sqlite-processes-'));

const made: SqliteCoordinator[] = [];
const children = new ChildProcesses();

/** A fresh database file of its own for one test. */
function freshFile(): string {
  return join(dir, `${randomId()}.db`);
}

function make(path: string): SqliteCoordinator {
  const coordinator = new SqliteCoordinator({ path, driver: 'better-sqlite3' });
  made.push(coordinator);
  return coordinator;
}

/** Starts test/fixtures/sqlite-coordinator-process.ts in a node process of its own. */
function worker(...args: string[]): Promise<ReadyProcess> {
  return children.fixture(WORKER, ...args);
}

afterEach(async () => {
  await Promise.all(made.splice(0).map((c) => c.close()));
  await children.killAll();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('SqliteCoordinator shared by processes of one host', () => {
  it('acquire(), the first of a process, keeps to timeoutMs while another process holds the write lock', async () => {
    const file = freshFile();
    // The file is set up already (tables there), as on any restart of a worker.
    const setUp = make(file);
    await (await setUp.acquire('warm', { ttlMs: 1000, timeoutMs: 1000 })).release();
    await setUp.close();
    await worker('write-lock', file);

    const coordinator = make(file);
    const started = now();
    const outcome = await coordinator.acquire('l', { ttlMs: 1000, timeoutMs: 300 }).then(
      () => 'acquired',
      (error: unknown) => error,
    );
    const waited = now() - started;
    expect(outcome).toBeInstanceOf(LockTimeoutError);
    // timeoutMs is 300: the default operationTimeoutMs (5000) must not be what bounds the wait
    expect(waited).toBeLessThan(1500);
  });

  // Processes in a pid namespace whose /proc is not their own (`unshare --pid --fork` without
  // `--mount-proc`, a sandbox that binds the outer /proc): /proc/<pid> there names another process.
  const userNamespaces =
    process.platform === 'linux' && spawnSync('unshare', ['-Urpf', 'true'], { stdio: 'ignore' }).status === 0;
  // Skipped only off CI where unprivileged user namespaces are missing: in CI a skip is a hole, so it runs and fails.
  it.skipIf(!userNamespaces && process.env.CI !== 'true')(
    'acquire() leaves a live holder its lock in a pid namespace whose /proc belongs to the parent namespace',
    async () => {
      const file = freshFile();
      // Namespace A gets its own /proc; its init leaves 40 zombies (pids 2..41) and becomes the
      // parent of namespace B, which has no /proc of its own: there /proc/<n> is A's process n.
      const zombies = 'sleep 0 & '.repeat(40);
      const node = `${JSON.stringify(process.execPath)} --import tsx ${JSON.stringify(WORKER)}`;
      const script = `${zombies} exec unshare -pf ${node} duel ${JSON.stringify(file)} lock`;
      const { value } = await children.start('unshare', ['-Urpf', '--mount-proc', 'sh', '-c', script]);
      const duel = JSON.parse(value) as {
        holderPid: number;
        holderToken: string;
        stat: string;
        holderAlive: boolean;
        outcome: string;
      };
      // The holder (ttlMs 60000) is alive in B, yet /proc/<its pid> shows one of A's zombies.
      expect(duel.holderAlive).toBe(true);
      expect(duel.stat).toMatch(/ Z$/);
      // Another process of the same namespace must not be granted the lock while it lives.
      expect(duel.outcome).toBe('LockTimeoutError');
    },
  );
});
