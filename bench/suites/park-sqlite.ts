import { runParkSuite, type ParkBackend } from '../lib/park-harness.js';
import type { Suite } from '../lib/result.js';
import { openSqliteTables } from '../lib/sqlite-tables.js';

async function open(paused = 'paused'): Promise<ParkBackend> {
  const tables = await openSqliteTables({ running: 'running', paused });
  return {
    ...tables,
    description:
      `SQLite (\`openSqliteDatabase()\`: node:sqlite on Node.js 22.13 and later, better-sqlite3 before; WAL, ` +
      `synchronous NORMAL): host table \`workflows (id TEXT ` +
      `PRIMARY KEY, status TEXT NOT NULL)\` with an index on \`status\`, refilled, analyzed and ` +
      `checkpointed before every park, checkpointed again before every unpark (untimed: as a new process ` +
      `finds the file once the parking one has closed it); the store on the same handle. Raw park: one ` +
      `immediate transaction of ` +
      `\`INSERT INTO raw_marks ... SELECT id ... WHERE status = 'running'\` and \`UPDATE workflows SET ` +
      `status = 'paused' WHERE status = 'running'\` (\`raw_marks\` shaped like the store's marks table); ` +
      `raw unpark: \`UPDATE ... WHERE status = 'paused' AND id IN (SELECT id FROM raw_marks)\` and ` +
      `\`DELETE FROM raw_marks\`.`,
    inProcess: true,
  };
}

export const suite: Suite = {
  run: (context) =>
    runParkSuite(context, () => open(), {
      inUseRounds: 6,
      // In the index on status, 'paused' sorts just before 'running', 'stopped' just after: which of
      // park and resume writes its index entries next to the ones it deletes (see docs/performance.md).
      alternate: {
        title: "paused status 'stopped' (sorts after 'running')",
        description:
          "the same host table with the paused status `'stopped'` instead of `'paused'` (after `'running'` " +
          "in the index on status, where `'paused'` comes before it), for the store and the raw statements",
        rounds: 5,
        open: () => open('stopped'),
      },
    }),
};
