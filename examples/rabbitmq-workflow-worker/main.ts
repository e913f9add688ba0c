// StackStorm's workflow engine, graceful-drain style: engines consume workflow steps from RabbitMQ and
// keep workflow state in PostgreSQL. Engine A stops while B runs (nothing parked: a peer remains); B
// stops last (it parks the running workflows); C starts (it resumes exactly those) and finishes them.
// Every step runs exactly once, nothing is left on the queue. It drives itself and checks itself.
//   npx tsx examples/rabbitmq-workflow-worker/main.ts
// (RabbitMQ at GD_AMQP_URL, PostgreSQL at GD_POSTGRES_URL; defaults: the local servers)
import { randomUUID } from 'node:crypto';
import { setTimeout as wait } from 'node:timers/promises';
import { connect } from 'amqplib';
import pg from 'pg';
import { migrate } from 'graceful-drain/postgres';
import { type EngineConfig, Engine, createHostTables } from './engine.js';

const AMQP_URL = process.env.GD_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const POSTGRES_URL = process.env.GD_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const WORKFLOWS = 4;
const STEPS = 8;

const t0 = performance.now();
const say = (line: string): void =>
  console.log(`[${String(Math.round(performance.now() - t0)).padStart(4)} ms] ${line}`);

// Unique per run, dropped at the end: runs never collide.
const run = randomUUID().slice(0, 8);
const schema = `gd_example_${run}`;
const queue = `gd-example-steps-${run}`;
const db = new pg.Pool({ connectionString: POSTGRES_URL, max: 6 });
db.on('error', () => {}); // an idle connection that fails must not crash the process
const admin = await connect(AMQP_URL);
const adminChannel = await admin.createChannel();

const config: EngineConfig = {
  amqpUrl: AMQP_URL,
  postgresUrl: POSTGRES_URL,
  schema,
  queue,
  group: 'workflow-engine',
  stepMs: 60,
  db,
  log: say,
};

/** Resolves once `count` more steps have been recorded, whoever ran them. */
async function stepsRecorded(count: number): Promise<void> {
  const total = async (): Promise<number> =>
    Number((await db.query(`SELECT count(*) AS n FROM ${schema}.step_log`)).rows[0].n);
  const target = (await total()) + count;
  while ((await total()) < target) await wait(20);
}

async function statuses(): Promise<Record<string, number>> {
  const { rows } = await db.query<{ status: string; n: string }>(
    `SELECT status, count(*) AS n FROM ${schema}.workflows GROUP BY status ORDER BY status`,
  );
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

const brief = (r: Awaited<ReturnType<Engine['stop']>>): string =>
  JSON.stringify({
    outcome: r.outcome,
    inFlightAtStart: r.inFlightAtStart,
    handOff: r.handOff,
    lastMember: r.lastMember,
    parked: r.parked,
  });

let failed = false;
try {
  await createHostTables(db, schema);
  await migrate(db, { schema });
  await adminChannel.assertQueue(queue, { durable: true });
  for (let i = 0; i < WORKFLOWS; i++) {
    await db.query(`INSERT INTO ${schema}.workflows (id, status, steps) VALUES ($1, 'running', $2)`, [
      `wf-${i}`,
      STEPS,
    ]);
  }

  const a = new Engine('engine-A', config);
  const b = new Engine('engine-B', config);
  await a.start();
  await b.start();
  for (let i = 0; i < WORKFLOWS; i++) await a.publish({ id: `wf-${i}`, step: 0 });
  say(`${WORKFLOWS} workflows of ${STEPS} steps started; engines A and B consuming`);

  await stepsRecorded(6);
  const reportA = await a.stop();
  say(`A stopped: ${brief(reportA)} (B still runs the workflows)`);
  say(`A's consumer: ${JSON.stringify(a.consumer?.stats)}`);

  await stepsRecorded(4);
  const reportB = await b.stop();
  say(`B stopped last: ${brief(reportB)}`);
  say(`workflows now: ${JSON.stringify(await statuses())}`);

  const c = new Engine('engine-C', config);
  await c.start();
  const resumed = await c.drain.whenResumed();
  say(`C started and resumed ${resumed?.resumed} workflows`);
  while ((await statuses()).succeeded !== WORKFLOWS) await wait(20);
  const reportC = await c.stop();
  say(`every workflow succeeded; C stopped: ${brief(reportC)}`);

  // Checks: every step recorded exactly once (the step log's primary key refuses a second), every
  // workflow finished, no step message left behind.
  const { rows } = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${schema}.step_log`);
  const recorded = Number(rows[0]?.n);
  const { messageCount } = await adminChannel.checkQueue(queue);
  const ranBy = { A: a.stepsRun, B: b.stepsRun, C: c.stepsRun };
  say(
    `steps recorded: ${recorded} of ${WORKFLOWS * STEPS}, by ${JSON.stringify(ranBy)}; left on the queue: ${messageCount}`,
  );
  const checks = [
    recorded === WORKFLOWS * STEPS,
    a.stepsRun + b.stepsRun + c.stepsRun === WORKFLOWS * STEPS,
    messageCount === 0,
    reportA.outcome === 'clean' && reportA.handOff === 'peers-remain' && reportA.parked === 0,
    reportB.outcome === 'clean' && reportB.handOff === 'parked' && reportB.parked > 0,
    resumed?.resumed === reportB.parked,
  ];
  if (checks.some((ok) => !ok)) throw new Error(`a check failed: ${JSON.stringify(checks)}`);
  say('checks passed');
} catch (error) {
  failed = true;
  console.error('FAILED:', error);
} finally {
  await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
  await adminChannel.deleteQueue(queue).catch(() => {});
  await admin.close().catch(() => {});
  await db.end();
}
process.exitCode = failed ? 1 : 0;
