// A BullMQ worker drained on shutdown: the jobs in flight finish (their locks kept alive, so none
// stalls), a job fetched after intake closed goes back to `wait` without running, and the next worker
// (the next pod) picks up the rest. Each job runs exactly once. It drives itself and checks itself.
//   npx tsx examples/bullmq-worker/main.ts          (Redis at GD_REDIS_URL, default redis://127.0.0.1:6379)
import { randomUUID } from 'node:crypto';
import { type Job, Queue, WaitingError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { DrainController } from 'graceful-drain';
import { setTimeout as wait } from 'node:timers/promises';

const REDIS_URL = process.env.GD_REDIS_URL ?? 'redis://127.0.0.1:6379';
const JOBS = 9;
const jobMs = (n: number): number => 250 + (n % 3) * 150; // staggered, so jobs overlap
const CONCURRENCY = 3;

const t0 = performance.now();
const say = (line: string): void =>
  console.log(`[${String(Math.round(performance.now() - t0)).padStart(4)} ms] ${line}`);
// `signal` aborts at the drain deadline; timers/promises leaves no listener on it behind.
const sleep = (ms: number, signal?: AbortSignal): Promise<void> => wait(ms, undefined, { signal });

const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
const queueName = `gd-example-${randomUUID()}`; // unique per run: runs never collide
const queue = new Queue(queueName, { connection });
const ranBy = new Map<string, string[]>();
let onJobStarted: (who: string) => void = () => {};

/** One worker process: a DrainController around a BullMQ Worker. */
function startWorker(who: string): { drain: DrainController; worker: Worker; closed: () => Promise<void> } {
  const drain = new DrainController({ shutdownTimeoutMs: 5_000 });
  const worker = new Worker(
    queueName,
    async (job: Job, token?: string) => {
      const run = drain.tryTrack(
        async ({ signal }) => {
          onJobStarted(who);
          await sleep(jobMs(job.data.n), signal);
          ranBy.set(job.id as string, [...(ranBy.get(job.id as string) ?? []), who]);
          return `step ${job.data.n} done`;
        },
        { label: `job ${job.id}` },
      );
      if (run === undefined) {
        // Fetched after intake closed: put it back for the next worker, without running it or
        // spending one of its attempts.
        say(`${who}: ${job.id} fetched after intake closed; back to wait`);
        await job.moveToWait(token);
        throw new WaitingError();
      }
      return run;
    },
    { connection, concurrency: CONCURRENCY, autorun: false },
  );
  worker.on('error', (error) => say(`${who}: worker error: ${error.message}`));
  // worker.close() stops fetching at once but resolves only when the active jobs are done (it keeps
  // their locks renewed meanwhile): start it as the intake stopper, await it once the drain is over.
  let closing: Promise<void> = Promise.resolve();
  drain.onStopIntake(() => {
    closing = worker.close();
    closing.catch(() => {});
  });
  void worker.run();
  return { drain, worker, closed: () => closing };
}

await queue.addBulk(
  Array.from({ length: JOBS }, (_, n) => ({ name: 'step', data: { n }, opts: { jobId: `job-${n}` } })),
);
say(`queued ${JOBS} jobs on ${queueName}`);

// Worker A: shut down while jobs are in flight.
const a = startWorker('A');
await a.drain.start();
// Once one job is done and the next has started, CONCURRENCY jobs are in flight.
await new Promise<void>((resolve) => {
  let started = 0;
  onJobStarted = () => ++started === CONCURRENCY + 1 && resolve();
});
say(`A: ${a.drain.inFlight} jobs in flight; shutting down`);
const report = await a.drain.shutdown({ reason: 'deploy' });
await a.closed();
const { outcome, inFlightAtStart, completed, aborted } = report;
say(`A: report ${JSON.stringify({ outcome, inFlightAtStart, completed, aborted })}`);
say(`after A: ${JSON.stringify(await queue.getJobCounts('active', 'wait', 'completed', 'failed'))}`);

// Worker B, the next pod: finishes the rest.
const left = JOBS - ((await queue.getJobCounts('completed')).completed ?? 0);
const b = startWorker('B');
const allDone = new Promise<void>((resolve) => {
  let completed = 0;
  b.worker.on('completed', () => ++completed === left && resolve());
});
await b.drain.start();
await allDone;
await b.drain.shutdown({ reason: 'done' });
await b.closed();

// Check: every job completed exactly once, none failed, none stalled.
const jobs = await queue.getJobs(['completed', 'failed', 'active', 'wait', 'delayed']);
const problems: string[] = [];
for (const job of jobs) {
  const runs = ranBy.get(job.id as string) ?? [];
  if (runs.length !== 1) problems.push(`${job.id} ran ${runs.length} times`);
  if (job.stalledCounter !== 0) problems.push(`${job.id} stalled ${job.stalledCounter} times`);
  if (!job.finishedOn || job.failedReason) problems.push(`${job.id} did not complete`);
}
if (jobs.length !== JOBS) problems.push(`${jobs.length} jobs found, expected ${JOBS}`);
const byA = jobs.filter((j) => ranBy.get(j.id as string)?.[0] === 'A').length;
say(
  `A ran ${byA} jobs, B ran ${JOBS - byA}; none stalled, none failed, none ran twice: ${problems.length === 0}`,
);

await queue.obliterate({ force: true });
await queue.close();
await connection.quit();
if (report.outcome !== 'clean' || problems.length > 0) {
  console.error(`FAILED: ${problems.join('; ') || `outcome ${report.outcome}`}`);
  process.exitCode = 1;
}
