// A single process, no cluster: work tracked through track(), a shutdown that drains what is in
// flight, asks a straggler to wrap up, cancels it, and prints the report.
//   npx tsx examples/local-drain.ts
import { DrainController } from 'graceful-drain';

const drain = new DrainController({ shutdownTimeoutMs: 2_000, abortGraceMs: 300 });
await drain.start();

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), reject(signal.reason)), { once: true });
  });

for (let i = 1; i <= 5; i++) {
  drain
    .track(({ signal }) => sleep(i * 150, signal), { label: `job-${i}` })
    .then(
      () => console.log(`job-${i} finished`),
      (error: Error) => console.log(`job-${i} cancelled: ${error.name}`),
    );
}
// A straggler: it ignores "wrap up" and only stops when its signal aborts at the drain deadline.
drain
  .track(({ signal }) => sleep(60_000, signal), { label: 'straggler' })
  .catch((error: Error) => console.log(`straggler cancelled: ${error.message}`));

console.log(`${drain.inFlight} tasks in flight; shutting down`);
const report = await drain.shutdown({ reason: 'demo' });
console.log(JSON.stringify(report, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2));
