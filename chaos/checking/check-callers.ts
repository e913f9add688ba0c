/**
 * The controller is safe against its own callers (invariant 13, and the `hostile-listeners` fault): a
 * member whose listeners and intake stoppers throw, or call `shutdown()` from inside the shutdown, or
 * stop it from a `resume` listener, still goes through one shutdown:
 *
 * - `stopped` is emitted once; the state never leaves `stopped`, and no state of the shutdown
 *   (`draining`, `handing-off`, `stopped`) is entered twice;
 * - every `shutdown()` a listener or a stopper made got the shutdown's own promise, and its report;
 * - `start()` after the shutdown rejects with `DrainClosedError`;
 * - no error escapes to the process (an exception or a rejection nobody handled).
 *
 * Its budget is the bounded-shutdown check's (every report within `shutdownTimeoutMs`).
 */
import { check, type CheckResult, type Violation } from './check-result.js';
import type { HostileMode } from '../history.js';
import type { Model } from './model.js';

/** The states of a shutdown: each entered once at most. */
const ONCE = new Set(['draining', 'handing-off', 'stopped']);

/** Invariant 13: listeners and stoppers that throw or call `shutdown()` change nothing. */
export function checkOwnCallers(model: Model): CheckResult {
  const violations: Violation[] = [];
  const modes = new Map<HostileMode, number>();
  let calls = 0;
  for (const m of model.members.values()) {
    const entered = new Set<string>();
    let stopped = 0;
    for (const e of m.events) {
      const v = (message: string): void =>
        void violations.push({ message: `${m.id}: ${message}`, at: e.t, members: [m.id] });
      switch (e.type) {
        case 'hostile':
          modes.set(e.mode, (modes.get(e.mode) ?? 0) + 1);
          break;
        case 'state':
          // `failed` (start() failed) goes on to `stopped` with the shutdown; nothing leaves `stopped`.
          if (e.from === 'stopped') v(`its state went from stopped to ${e.to}`);
          if (ONCE.has(e.to) && entered.has(e.to)) v(`entered ${e.to} twice`);
          entered.add(e.to);
          break;
        case 'stopped':
          if (++stopped === 2) v('`stopped` was emitted twice');
          break;
        case 'reentrant':
          calls++;
          if (!e.samePromise || !e.sameReport) {
            v(
              `shutdown() called from ${e.where} got ${e.samePromise ? 'the same promise' : 'another promise'} and ${e.sameReport ? 'the same report' : 'another report'}`,
            );
          }
          break;
        case 'start-after-stop':
          if (e.error?.name !== 'DrainClosedError') {
            v(
              `start() after the shutdown ${e.error === null ? 'resolved' : `rejected with ${e.error.name}: ${e.error.message}`}, not DrainClosedError`,
            );
          }
          break;
        case 'uncaught':
          v(`an error escaped to the process (${e.origin}): ${e.error.name}: ${e.error.message}`);
          break;
        default:
          break;
      }
    }
  }
  const hostile = [...modes.values()].reduce((a, b) => a + b, 0);
  return check(
    'listeners and stoppers that throw or call shutdown() change nothing',
    '13',
    violations,
    `${hostile} members with hostile listeners (${[...modes].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}); ` +
      `${calls} shutdown() calls from inside the shutdown, each given its promise and report; one stop each; no error escaped`,
  );
}
