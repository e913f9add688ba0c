/**
 * A member whose own listeners and intake stoppers misbehave, as a careless host's would (the
 * `hostile-listeners` fault): they throw, or call `shutdown()` from inside the shutdown, or stop the
 * member from a `resume` listener. The controller must shrug all of it off.
 */
import type { DrainController, DrainEvents, ShutdownReport } from 'graceful-drain';
import { errorRecord, type HostileMode, type MemberEvent, type Recorder } from '../history.js';

/** A `shutdown()` a listener or a stopper made: its promise, to compare with the report. */
export interface ReentrantCall {
  readonly where: string;
  readonly promise: Promise<ShutdownReport>;
}

/** The events a hostile member's listeners throw from. */
const THROWING_EVENTS: readonly (keyof DrainEvents)[] = [
  'stateChange',
  'drained',
  'drainTimeout',
  'escalate',
  'park',
  'resume',
  'membershipLost',
  'idle',
  'warning',
  'stopped',
];

/**
 * Registers listeners and intake stoppers that misbehave, after the member's own (an emitter stops
 * calling the listeners of an event at the first that throws: the recording ones come first).
 *
 * - `throw`: a listener of every event throws; one intake stopper throws, another rejects.
 * - `reentrant`: listeners call `shutdown()` at every step of the shutdown (`draining`,
 *   `handing-off`, `stopped`, `drained`, each `park` batch) and so does an intake stopper; the
 *   `stopped` listener calls `start()` too. Each call must get the shutdown's own promise and report.
 * - `stop-in-resume`: a `resume` listener calls `shutdown()` at the first resume round (`selfStop`):
 *   a member that stops while its background resume is under way.
 */
export function misbehave(
  drain: DrainController,
  mode: HostileMode,
  record: Recorder<MemberEvent>,
  calls: ReentrantCall[],
  selfStop: (reason: string) => void,
): void {
  record({ type: 'hostile', mode });
  const shutdown = (where: string): void => {
    record({ type: 'hostile-shutdown', where, state: drain.state });
    calls.push({ where, promise: drain.shutdown() });
  };
  switch (mode) {
    case 'throw':
      for (const event of THROWING_EVENTS) {
        drain.on(event, () => {
          throw new Error(`chaos: a hostile ${event} listener`);
        });
      }
      drain.onStopIntake(() => {
        throw new Error('chaos: a hostile intake stopper');
      });
      drain.onStopIntake(() => Promise.reject(new Error('chaos: a hostile intake stopper (async)')));
      break;
    case 'reentrant':
      drain.on('stateChange', ({ to }) => {
        if (to === 'draining' || to === 'handing-off' || to === 'stopped') shutdown(`stateChange ${to}`);
      });
      drain.onStopIntake(() => shutdown('intake stopper'));
      drain.on('drained', () => shutdown('drained'));
      drain.on('park', () => shutdown('park'));
      drain.on('stopped', () => {
        shutdown('stopped');
        drain.start().then(
          () => record({ type: 'start-after-stop', error: null }),
          (error: unknown) => record({ type: 'start-after-stop', error: errorRecord(error) }),
        );
      });
      break;
    case 'stop-in-resume': {
      let done = false;
      drain.on('resume', () => {
        if (done) return;
        done = true;
        record({ type: 'hostile-shutdown', where: 'resume', state: drain.state });
        selfStop('a resume listener');
      });
      break;
    }
  }
}
