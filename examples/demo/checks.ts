/** The demo's own checks: of the hand-offs and of the shutdowns, from the workers' summaries. */
import { check, type Check } from '../../harness/host-checks.js';
import type { WorkerSummary } from './summary.js';

/**
 * The hand-off is decided by who is last. In a rolling stop (one worker after the other, each waited
 * for), every worker but the last reports `peers-remain` and the last `parked`. When workers stop at
 * once they serialise on the start-stop lock: whoever finds no live peer parks, which may be more than
 * one (they leave before they lock, and the later ones find nothing left running), but never none.
 */
export function checkHandOffs(
  rollingStop: readonly WorkerSummary[],
  clusterStop: readonly WorkerSummary[],
  killed?: WorkerSummary,
): Check {
  const problems: string[] = [];
  rollingStop.forEach((w, i) => {
    const expected = i === rollingStop.length - 1 && killed === undefined ? 'parked' : 'peers-remain';
    if (w.report?.handOff !== expected) {
      problems.push(`${w.memberId}: hand-off ${w.report?.handOff ?? '(no report)'}, expected ${expected}`);
    }
  });
  const parkers = clusterStop.filter((w) => w.report?.handOff === 'parked');
  if (clusterStop.length > 0 && parkers.length === 0)
    problems.push('cluster stop: no member took the park step');
  for (const w of clusterStop) {
    if (w.report?.handOff !== 'parked' && w.report?.handOff !== 'peers-remain') {
      problems.push(`${w.memberId}: hand-off ${w.report?.handOff ?? '(no report)'} at the cluster stop`);
    }
  }
  const parts: string[] = [];
  const last = rollingStop[rollingStop.length - 1];
  if (killed !== undefined) {
    if (killed.exit?.signal !== 'SIGKILL' || killed.report !== undefined) {
      problems.push(
        `${killed.memberId}: expected killed by SIGKILL with no report, got exit ${killed.exit?.code ?? killed.exit?.signal}`,
      );
    }
    parts.push(
      `rolling stop: ${rollingStop.map((w) => w.memberId).join(', ') || 'no worker'} left the work to peers, ${
        killed.memberId
      } (the last) was killed: no park`,
    );
  } else if (last !== undefined) {
    const handedOver = rollingStop.slice(0, -1).map((w) => w.memberId);
    parts.push(
      `rolling stop: ${handedOver.length > 0 ? `${handedOver.join(', ')} left the work to peers, ` : ''}${
        last.memberId
      } (the last) parked ${last.report?.parked ?? 0}`,
    );
  }
  if (parkers.length > 0) {
    const parked = parkers.reduce((n, w) => n + (w.report?.parked ?? 0), 0);
    parts.push(
      `cluster stop: ${parkers.map((w) => w.memberId).join(', ')} found no live peer and parked ${parked}`,
    );
  }
  return check('hand-off decided by who is last', problems, parts.join('; ') || 'no worker was stopped');
}

/** Every worker's shutdown was `clean` and it exited with code 0 (but those named, killed on purpose). */
export function checkCleanShutdowns(workers: readonly WorkerSummary[], killed?: WorkerSummary): Check {
  const stopped = workers.filter((w) => w.memberId !== killed?.memberId);
  return check(
    killed === undefined ? 'every worker shut down cleanly' : 'every worker not killed shut down cleanly',
    stopped
      .filter((w) => w.exit?.code !== 0 || w.report?.outcome !== 'clean')
      .map(
        (w) =>
          `${w.memberId}: exit ${w.exit?.code ?? w.exit?.signal}, outcome ${w.report?.outcome ?? 'none'}`,
      ),
    `${stopped.length} shutdowns, all clean, exit 0`,
  );
}
