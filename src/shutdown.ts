/**
 * The phases of a shutdown, in order: stop intake, drain (wait, then abort the stragglers' `signal` and
 * give them a grace), wind the background resume down, hand off, report. One budget, `shutdownTimeoutMs`,
 * from the first phase to the report.
 * @internal
 */
import createDebug from 'debug';
import { DrainTimeoutError } from './errors.js';
import { handOffAtShutdown, noHandOff } from './hand-off.js';
import { bounded, now } from './internal/time.js';
import { publish } from './metrics.js';
import type { CompiledOptions } from './options.js';
import { frozenReport } from './report.js';
import type { PhaseReport, Recorder, ReportedError, ShutdownReport } from './report.js';
import type { Starter } from './start.js';
import type { Tracker } from './tracker.js';
import type { DrainEvents, DrainState } from './types.js';

const log = createDebug('graceful-drain:shutdown');

/** An intake stopper, as registered with `onStopIntake`. */
export type Stopper = (signal: AbortSignal) => unknown;

/** What a shutdown needs from its controller. */
export interface ShutdownHost {
  readonly options: CompiledOptions;
  readonly tracker: Tracker;
  readonly starter: Starter | undefined;
  readonly stoppers: readonly Stopper[];
  /** Aborted when the shutdown is forced. */
  readonly force: AbortSignal;
  /** When `shutdown()` was called (monotonic), what was in flight then, and whether `start()` was. */
  readonly startedAt: number;
  readonly inFlightAtStart: number;
  readonly started: boolean;
  readonly reason: string | undefined;
  state(): DrainState;
  setState(to: DrainState): void;
  emit<K extends keyof DrainEvents>(event: K, ...args: DrainEvents[K]): void;
}

/** Runs every phase of a shutdown and resolves with its report. */
export async function runShutdown(host: ShutdownHost): Promise<ShutdownReport> {
  const { options: o, tracker, force, startedAt: t0, inFlightAtStart } = host;
  const phases: PhaseReport[] = [];
  const errors: ReportedError[] = [];
  const record: Recorder = {
    phase: (name, startedAt, outcome) => phases.push({ name, durationMs: now() - startedAt, outcome }),
    error: (phase, error) => {
      log('error in %s: %O', phase, error);
      errors.push({ phase, error });
    },
  };
  const scope = { group: o.group, memberId: o.memberId };
  const budgetEnd = t0 + o.shutdownTimeoutMs;
  const drainEnd = t0 + o.shutdownTimeoutMs * o.drainShare;
  const abortAt = drainEnd - Math.min(o.abortGraceMs, (drainEnd - t0) / 2);
  if (host.started && host.state() !== 'failed') host.setState('draining');

  await stopIntake(host, abortAt, record);

  let stragglers = 0;
  let stragglerLabels: string[] = [];
  const drainStart = now();
  const drained = await tracker.waitIdle(abortAt, force);
  record.phase('drain', drainStart, drained === 'idle' ? 'ok' : drained);
  if (drained === 'idle' && tracker.aborted === undefined) {
    host.emit('drained', { durationMs: now() - t0, completed: inFlightAtStart });
  } else if (drained !== 'idle') {
    if (tracker.aborted === undefined) {
      const inFlight = tracker.inFlight;
      tracker.abortTasks(
        new DrainTimeoutError(`The drain deadline passed with ${inFlight} task(s) in flight: stop now`),
      );
      host.emit('drainTimeout', { inFlight, labels: tracker.labels() });
    }
    const graceStart = now();
    const settled = drained === 'forced' ? 'forced' : await tracker.waitIdle(drainEnd, force);
    record.phase('grace', graceStart, settled === 'idle' ? 'ok' : settled);
    stragglers = tracker.inFlight;
    stragglerLabels = tracker.labels();
    if (stragglers > 0) log('%d straggler(s) left behind: %o', stragglers, stragglerLabels);
  }
  const aborted = tracker.aborted ?? { count: 0, labels: [] };
  const durationMs = now() - t0;
  publish('drain', () => ({ ...scope, durationMs, inFlightAtStart, aborted: aborted.count, stragglers }));

  const starter = host.starter;
  const inherited = await starter?.windDown(budgetEnd, force, (at, outcome) =>
    record.phase('resume-wind-down', at, outcome),
  );
  let handOff = noHandOff(o.handOff !== undefined ? 'not-joined' : 'disabled');
  if (o.handOff !== undefined && starter?.membership !== undefined) {
    host.setState('handing-off');
    handOff = await handOffAtShutdown({
      options: o,
      ...o.handOff,
      membership: starter.membership,
      inherited,
      budgetEnd,
      signal: force,
      record,
      onPark: (progress) => {
        publish('park', () => ({ ...scope, ...progress }));
        host.emit('park', progress);
      },
    });
  }

  const failed = errors.length > 0 || host.state() === 'failed';
  const report: ShutdownReport = frozenReport({
    reason: host.reason,
    outcome: force.aborted ? 'forced' : aborted.count > 0 ? 'timed-out' : failed ? 'failed' : 'clean',
    forced: force.aborted,
    durationMs: now() - t0,
    phases: Object.freeze([...phases]),
    inFlightAtStart,
    completed: inFlightAtStart - aborted.count,
    aborted: aborted.count,
    abortedLabels: Object.freeze([...aborted.labels]),
    stragglers,
    stragglerLabels: Object.freeze(stragglerLabels),
    ...handOff,
    warnings: Object.freeze([...(starter?.warnings ?? [])]),
    errors: Object.freeze([...errors]),
  });
  host.setState('stopped');
  log('shutdown finished: %o', { ...report, errors: report.errors.length });
  host.emit('stopped', report);
  return report;
}

/** Runs the intake stoppers in order, each bounded by `deadline`; one that fails or hangs is recorded. */
async function stopIntake(host: ShutdownHost, deadline: number, record: Recorder): Promise<void> {
  if (host.stoppers.length === 0) return;
  const { force } = host;
  const startedAt = now();
  // A copy: a stopper that unregisters itself must not make the next one be skipped.
  const stoppers = [...host.stoppers];
  if (force.aborted) {
    // Forced from the start: every stopper is still called, none is awaited.
    for (const stopper of stoppers) {
      Promise.resolve()
        .then(() => stopper(force))
        .catch((error: unknown) => log('intake stopper failed after force: %O', error));
    }
    return record.phase('stop-intake', startedAt, 'forced');
  }
  let outcome: PhaseReport['outcome'] = 'ok';
  for (const [index, stopper] of stoppers.entries()) {
    const timeUp = new AbortController();
    const signal = AbortSignal.any([timeUp.signal, force]);
    try {
      await bounded(
        Promise.resolve().then(() => stopper(signal)),
        Math.max(0, deadline - now()),
        () => new DrainTimeoutError(`Intake stopper #${index + 1} did not finish before the drain deadline`),
        force,
      );
    } catch (error) {
      timeUp.abort(error);
      if (force.aborted) outcome = 'forced';
      else {
        outcome = 'error';
        record.error('intake-stopper', error);
      }
    }
  }
  record.phase('stop-intake', startedAt, outcome);
}
