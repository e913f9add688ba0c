/**
 * One workflow engine, in StackStorm's shape: it consumes "run step N of workflow W" messages from
 * RabbitMQ (through `graceful-drain/amqplib`), runs the step, records it in PostgreSQL and publishes
 * the next step. Its DrainController is a member of the engines' group on a `PostgresCoordinator`, with
 * a `PostgresWorkflowStore` over the host's `workflows` table: the last engine to stop parks the running
 * workflows, the next to start resumes them.
 *
 * A step is recorded at most once: the step log's primary key and the `step = $n` guard make a
 * duplicate message (a redelivery, or a step re-requested on resume) a harmless no-op.
 */
import { type Channel, type ChannelModel, type ConfirmChannel, connect } from 'amqplib';
import type pg from 'pg';
import { DrainController, type WorkflowStore } from 'graceful-drain';
import { consume, type DrainConsumer } from 'graceful-drain/amqplib';
import { PostgresCoordinator, PostgresWorkflowStore } from 'graceful-drain/postgres';
import { setTimeout as wait } from 'node:timers/promises';

/** Where an engine finds its servers and its tables. */
export interface EngineConfig {
  readonly amqpUrl: string;
  readonly postgresUrl: string;
  /** The run's PostgreSQL schema: the host's tables and graceful-drain's. */
  readonly schema: string;
  /** The queue of step messages. */
  readonly queue: string;
  /** The engines' group. */
  readonly group: string;
  /** How long one step takes. */
  readonly stepMs: number;
  /** The host database. */
  readonly db: pg.Pool;
  readonly log: (line: string) => void;
}

/** A step message. */
export interface StepMessage {
  readonly id: string;
  readonly step: number;
}

// `signal` aborts at the drain deadline; timers/promises leaves no listener on it behind.
const sleep = (ms: number, signal?: AbortSignal): Promise<void> => wait(ms, undefined, { signal });

/** Creates the host's tables in the run's schema. */
export async function createHostTables(db: pg.Pool, schema: string): Promise<void> {
  await db.query(`CREATE SCHEMA ${schema}`);
  await db.query(`CREATE TABLE ${schema}.workflows (
    id text PRIMARY KEY,
    status text NOT NULL,
    step integer NOT NULL DEFAULT 0,
    steps integer NOT NULL
  )`);
  await db.query(`CREATE TABLE ${schema}.step_log (
    id text NOT NULL,
    step integer NOT NULL,
    engine text NOT NULL,
    PRIMARY KEY (id, step)
  )`);
}

/** A running engine. */
export class Engine {
  readonly name: string;
  readonly drain: DrainController;
  readonly #config: EngineConfig;
  readonly #coordinator: PostgresCoordinator;
  readonly #store: PostgresWorkflowStore;
  #connection: ChannelModel | undefined;
  #publisher: ConfirmChannel | undefined;
  #consumer: DrainConsumer | undefined;
  stepsRun = 0;
  skipped = 0;

  constructor(name: string, config: EngineConfig) {
    this.name = name;
    this.#config = config;
    const { postgresUrl: connectionString, schema } = config;
    this.#coordinator = new PostgresCoordinator({ connectionString, schema });
    this.#store = new PostgresWorkflowStore({
      connectionString,
      schema,
      table: `${schema}.workflows`,
      statuses: { running: 'running', paused: 'paused' },
    });
    this.drain = new DrainController({
      group: config.group,
      memberId: name,
      coordinator: this.#coordinator,
      store: this.#resumingStore(),
      shutdownTimeoutMs: 10_000,
    });
  }

  /** Joins the group, starts consuming; the resume of parked workflows runs in the background. */
  async start(): Promise<void> {
    const { amqpUrl, queue } = this.#config;
    this.#connection = await connect(amqpUrl);
    this.#publisher = await this.#connection.createConfirmChannel();
    const channel: Channel = await this.#connection.createChannel();
    await this.drain.start();
    this.#consumer = await consume(
      this.drain,
      channel,
      queue,
      (msg, { signal }) => this.#runStep(JSON.parse(msg.content.toString()) as StepMessage, signal),
      // The consumer closes the channel, then the connection (and with it the publisher), once the
      // drain is over: before the hand-off, which needs only PostgreSQL.
      { prefetch: 2, connection: this.#connection },
    );
  }

  /** Shuts down: cancel the consumer, drain the steps in flight, hand off; then close what it owns. */
  async stop(): Promise<Awaited<ReturnType<DrainController['shutdown']>>> {
    const report = await this.drain.shutdown({ reason: 'deploy' });
    await this.#consumer?.close();
    await this.#store.close();
    await this.#coordinator.close();
    return report;
  }

  get consumer(): DrainConsumer | undefined {
    return this.#consumer;
  }

  /** Publishes a step message and waits for the broker to confirm it. */
  publish(message: StepMessage): Promise<void> {
    const publisher = this.#publisher;
    if (publisher === undefined) return Promise.reject(new Error(`${this.name} is not started`));
    return new Promise((resolve, reject) =>
      publisher.sendToQueue(
        this.#config.queue,
        Buffer.from(JSON.stringify(message)),
        { messageId: `${message.id}/${message.step}`, persistent: true },
        (error: unknown) => (error ? reject(error) : resolve()),
      ),
    );
  }

  async #runStep({ id, step }: StepMessage, signal: AbortSignal): Promise<void> {
    const { db, schema, stepMs } = this.#config;
    const { rows } = await db.query<{ status: string; step: number }>(
      `SELECT status, step FROM ${schema}.workflows WHERE id = $1`,
      [id],
    );
    const row = rows[0];
    // A paused workflow's step waits for the resume, which requests it again; a step already
    // recorded is a duplicate. Either way the message is done with.
    if (row === undefined || row.status !== 'running' || row.step !== step) {
      this.skipped++;
      return;
    }
    await sleep(stepMs, signal); // the step's work; `signal` aborts only at the drain deadline
    const client = await db.connect();
    let next: StepMessage | undefined;
    try {
      await client.query('BEGIN');
      const advanced = await client.query<{ step: number; steps: number }>(
        `UPDATE ${schema}.workflows
            SET step = step + 1, status = CASE WHEN step + 1 = steps THEN 'succeeded' ELSE status END
          WHERE id = $1 AND step = $2 AND status = 'running'
          RETURNING step, steps`,
        [id, step],
      );
      const done = advanced.rows[0];
      if (done === undefined) {
        await client.query('ROLLBACK');
        this.skipped++;
        return;
      }
      await client.query(`INSERT INTO ${schema}.step_log (id, step, engine) VALUES ($1, $2, $3)`, [
        id,
        step,
        this.name,
      ]);
      await client.query('COMMIT');
      this.stepsRun++;
      if (done.step < done.steps) next = { id, step: done.step };
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
    // Published (and confirmed) before this message is acked: a crash in between repeats the
    // publish, and the step guard above turns the duplicate into a no-op.
    if (next !== undefined) await this.publish(next);
  }

  /**
   * The store as the controller sees it, plus the host's side of a resume: a workflow resumed at
   * start gets its current step requested again (its message was consumed while it was paused, or
   * is still queued: the step guard keeps whichever comes second from running it twice).
   */
  #resumingStore(): WorkflowStore {
    const store = this.#store;
    return {
      capabilities: store.capabilities,
      listActive: (options) => store.listActive(options),
      park: (ids, fence, options) => store.park(ids, fence, options),
      listParked: (options) => store.listParked(options),
      raiseFence: (fence, options) => store.raiseFence(fence, options),
      notePaused: (ids, options) => store.notePaused(ids, options),
      diagnose: (options) => store.diagnose(options),
      // Crash recovery: a workflow recovered after a crash is parked, then unparked below like any other.
      readGeneration: (group, options) => store.readGeneration(group, options),
      enterGeneration: (group, member, fence, options) =>
        store.enterGeneration(group, member, fence, options),
      leaveGeneration: (group, ids, end, fence, options) =>
        store.leaveGeneration(group, ids, end, fence, options),
      recover: (ids, fence, options) => store.recover(ids, fence, options),
      unpark: async (ids, fence, options) => {
        const results = await store.unpark(ids, fence, options);
        const resumed = results.filter((r) => r.outcome === 'resumed').map((r) => r.id);
        if (resumed.length > 0) {
          const { db, schema } = this.#config;
          const { rows } = await db.query<{ id: string; step: number }>(
            `SELECT id, step FROM ${schema}.workflows WHERE id = ANY($1) AND status = 'running'`,
            [resumed],
          );
          await Promise.all(rows.map((row) => this.publish(row)));
          this.#config.log(`${this.name}: resumed ${rows.length} workflows, their next steps requested`);
        }
        return results;
      },
    };
  }
}
