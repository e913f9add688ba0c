import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { SqliteCoordinator, SqliteWorkflowStore } from '../src/adapters/sqlite/index.js';
import type { HostStatus, WorkflowStoreHarness } from '../src/testing/index.js';
import { coordinatorContract, workflowStoreContract } from '../src/testing/vitest/index.js';
import { forEachDriver, openDatabase, sqliteDriver } from './support/sqlite.js';

const dir = mkdtempSync(join(tmpdir(), 'gd-sqlite-contract-'));
const file = join(dir, 'contract.db');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

forEachDriver(() => {
  // Every instance opens its own connection on the one file, as a second process would.
  coordinatorContract(() => new SqliteCoordinator({ driver: sqliteDriver(), path: file }), {
    name: 'SqliteCoordinator',
    ttlMs: 600,
  });

  interface HostMapping {
    readonly idColumn: string;
    readonly statusColumn: string;
    /** The host's owner column (the store's `ownerColumn`): the owner capability. */
    readonly ownerColumn: string;
    readonly values: Readonly<Record<HostStatus, string>>;
    /** Give the store the harness's own handle (`database`) rather than a `path`. */
    readonly shareHandle: boolean;
  }

  let tables = 0;

  /** A harness over a fresh host table in the run's database file. */
  function harness(mapping: HostMapping): WorkflowStoreHarness {
    const db = openDatabase(file);
    tables += 1;
    const table = `workflows_${process.pid}_${tables}`;
    const marksTable = `marks_${process.pid}_${tables}`;
    const [id, status, owner] = [mapping.idColumn, mapping.statusColumn, mapping.ownerColumn].map(
      (name) => `"${name}"`,
    );
    db.exec(`CREATE TABLE "${table}" (${id} TEXT PRIMARY KEY, ${status} TEXT NOT NULL, ${owner} TEXT)`);
    db.exec(`CREATE INDEX "${table}_owner" ON "${table}" (${owner}, ${id})`);
    const store = new SqliteWorkflowStore({
      ...(mapping.shareHandle ? { database: db } : { driver: sqliteDriver(), path: file }),
      table,
      idColumn: mapping.idColumn,
      statusColumn: mapping.statusColumn,
      ownerColumn: mapping.ownerColumn,
      statuses: {
        running: mapping.values.running,
        pausing: mapping.values.pausing,
        paused: mapping.values.paused,
        failed: mapping.values.failed,
      },
      marksTable,
    });
    const byValue = new Map(
      Object.entries(mapping.values).map(([host, value]) => [value, host as HostStatus]),
    );
    return {
      store,
      async add(workflow, state) {
        db.prepare(`INSERT INTO "${table}" (${id}, ${status}) VALUES (?, ?)`).run(
          workflow,
          mapping.values[state],
        );
      },
      async status(workflow) {
        const value = db.prepare(`SELECT ${status} FROM "${table}" WHERE ${id} = ?`).pluck().get(workflow);
        return value === undefined ? undefined : byValue.get(value as string);
      },
      async setStatus(workflow, state) {
        db.prepare(`UPDATE "${table}" SET ${status} = ? WHERE ${id} = ?`).run(
          mapping.values[state],
          workflow,
        );
      },
      async setOwner(workflow, member) {
        db.prepare(`UPDATE "${table}" SET ${owner} = ? WHERE ${id} = ?`).run(member ?? null, workflow);
      },
      async remove(workflow) {
        db.prepare(`DELETE FROM "${table}" WHERE ${id} = ?`).run(workflow);
      },
      async close() {
        await store.close();
        db.exec(`DROP TABLE IF EXISTS "${table}"; DROP TABLE IF EXISTS "${marksTable}";
        DROP TABLE IF EXISTS "${marksTable}_fence"; DROP TABLE IF EXISTS "${marksTable}_generations";
        DROP TABLE IF EXISTS "${marksTable}_generation_members"; DROP TABLE IF EXISTS "${marksTable}_recoveries";
        DROP TABLE IF EXISTS "${marksTable}_evictions"`);
        db.close();
      },
    };
  }

  workflowStoreContract(
    () =>
      harness({
        idColumn: 'id',
        statusColumn: 'status',
        ownerColumn: 'owner',
        values: {
          running: 'running',
          pausing: 'pausing',
          paused: 'paused',
          succeeded: 'succeeded',
          cancelled: 'cancelled',
          failed: 'failed',
        },
        shareHandle: false,
      }),
    { name: 'SqliteWorkflowStore (defaults, own connection)' },
  );

  workflowStoreContract(
    () =>
      harness({
        idColumn: 'execution_id',
        statusColumn: 'state',
        ownerColumn: 'claimed_by',
        values: {
          running: 'RUNNING',
          pausing: 'PAUSING',
          paused: 'PAUSED',
          succeeded: 'SUCCEEDED',
          cancelled: 'CANCELED',
          failed: 'FAILED',
        },
        shareHandle: true,
      }),
    { name: 'SqliteWorkflowStore (host columns and values, shared handle)' },
  );
});
