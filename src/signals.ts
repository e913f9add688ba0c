import { constants } from 'node:os';
import createDebug from 'debug';
import type { DrainController } from './controller.js';
import { ConfigurationError } from './errors.js';
import type { ShutdownReport } from './report.js';
import { checkBoolean, checkFunction, checkOptionsObject, hasMethods, invalid } from './validate.js';

const log = createDebug('graceful-drain:signals');

/** Options of {@link installSignalHandlers}. */
export interface SignalHandlerOptions {
  /**
   * The signals that start a shutdown: the first a graceful one, the second forces it, a third exits.
   * @defaultValue `['SIGTERM', 'SIGINT']`
   */
  readonly signals?: readonly NodeJS.Signals[];
  /** Ends the process once the shutdown has finished. @defaultValue `(code) => process.exit(code)` */
  readonly exit?: (code: number) => void;
  /**
   * The exit code for a report. When it throws, the error is printed to stderr, the exit code is `1`, and
   * `onShutdown` still runs.
   * @defaultValue `0` for a `clean` report, `1` otherwise
   */
  readonly exitCode?: (report: ShutdownReport) => number;
  /**
   * Runs after the shutdown, before exiting, with its report (to log it, flush telemetry, close a server)
   * and its cause. When it throws or rejects, the error is printed to stderr and the exit code is `1`.
   */
  readonly onShutdown?: (report: ShutdownReport, cause: ShutdownCause) => unknown;
  /**
   * Also drain on an `uncaughtException` or `unhandledRejection`, as on a signal: the error is printed to
   * stderr, the shutdown runs (a second crash forces it, a third exits at once), and the exit code is `1`
   * whatever the report says. Off by default: Node's own behaviour (print and exit at once) stays.
   * @defaultValue `false`
   */
  readonly uncaught?: boolean;
}

/** What started the shutdown: a signal's name, or the crash that `uncaught: true` caught. */
export type ShutdownCause = NodeJS.Signals | 'uncaughtException' | 'unhandledRejection';

const optionNames = ['signals', 'exit', 'exitCode', 'onShutdown', 'uncaught'];
const uncatchable: readonly string[] = ['SIGKILL', 'SIGSTOP'];

const defaultExitCode = (report: ShutdownReport): number => (report.outcome === 'clean' ? 0 : 1);

/** The controllers with handlers installed: two installs would each exit, one cutting the other off. */
const installedOn = new WeakSet<object>();

/**
 * Opt-in signal handling: the first signal starts `drain.shutdown({ reason })`, the second escalates to
 * `force`, a third exits at once with code 1. After the shutdown the process exits with `exitCode(report)`
 * (always `1` after a crash caught with `uncaught: true`, or when `exitCode` or `onShutdown` throws). The controller
 * itself never exits the process: only this helper does, through `exit`. Install it once per controller:
 * a second install on the same one is refused until `uninstall()`.
 *
 * @returns `uninstall()`, which removes the handlers.
 * @throws `ConfigurationError` for a bad argument or option, or a controller that has handlers already.
 * @example
 * ```ts
 * const uninstall = installSignalHandlers(drain, { onShutdown: (report) => console.log(report) });
 * ```
 */
export function installSignalHandlers(drain: DrainController, options?: SignalHandlerOptions): () => void {
  // Checked now: a bad one would otherwise throw inside the first signal's handler, with nothing drained.
  if (!hasMethods(drain, 'shutdown')) invalid('drain', 'a DrainController', drain);
  const o = checkOptionsObject('installSignalHandlers', options, optionNames);
  const given = (o.signals ?? ['SIGTERM', 'SIGINT']) as readonly NodeJS.Signals[];
  if (!Array.isArray(given) || given.length === 0) {
    invalid('signals', 'a non-empty array of signal names', o.signals);
  }
  for (const name of given) {
    if (typeof name !== 'string' || !(name in constants.signals) || uncatchable.includes(name)) {
      invalid('signals', 'catchable signal names such as "SIGTERM"', name);
    }
  }
  // One handler per signal, however often it is named: a duplicate would count one signal twice.
  const signals = [...new Set(given)];
  const fn = <T>(name: string, fallback: T): T =>
    o[name] === undefined ? fallback : checkFunction<T>(name, o[name]);
  const exit = fn('exit', (code: number): void => process.exit(code));
  const exitCode = fn('exitCode', defaultExitCode);
  const onShutdown = fn<SignalHandlerOptions['onShutdown']>('onShutdown', undefined);
  const uncaught = o.uncaught === undefined ? false : checkBoolean('uncaught', o.uncaught);
  if (installedOn.has(drain)) {
    throw new ConfigurationError(
      'This `drain` has signal handlers already: call installSignalHandlers() once per controller, ' +
        'or uninstall() the first before installing again',
    );
  }

  let received = 0;
  let crashed = false;
  let exited = false;
  const finish = (code: number): void => {
    if (exited) return;
    exited = true;
    exit(code);
  };
  const handler = (cause: ShutdownCause): void => {
    received++;
    log('received %s (#%d)', cause, received);
    if (received === 2) void drain.shutdown({ force: true, reason: cause });
    else if (received > 2) finish(1);
    else {
      drain
        .shutdown({ reason: cause })
        .then(async (report) => {
          let code = 1;
          if (!crashed) {
            try {
              code = exitCode(report);
            } catch (error) {
              console.error('graceful-drain: exitCode threw (exiting with 1):', error);
            }
          }
          if (onShutdown !== undefined) {
            try {
              await onShutdown(report, cause);
            } catch (error) {
              console.error('graceful-drain: onShutdown failed:', error);
              code = 1;
            }
          }
          finish(code);
        })
        .catch((error: unknown) => {
          console.error('graceful-drain: the shutdown failed:', error);
          finish(1);
        });
    }
  };
  const onCrash = (cause: 'uncaughtException' | 'unhandledRejection') => (error: unknown) => {
    crashed = true;
    console.error(`graceful-drain: ${cause}, shutting down:`, error);
    handler(cause);
  };
  const onException = onCrash('uncaughtException');
  const onRejection = onCrash('unhandledRejection');
  const installed: NodeJS.Signals[] = [];
  try {
    for (const signal of signals) {
      process.on(signal, handler);
      installed.push(signal);
    }
  } catch (error) {
    // All or nothing: a signal the platform refuses leaves none of the handlers behind.
    for (const signal of installed) process.removeListener(signal, handler);
    throw error;
  }
  if (uncaught) {
    process.on('uncaughtException', onException);
    process.on('unhandledRejection', onRejection);
  }
  installedOn.add(drain);
  let uninstalled = false;
  return () => {
    if (uninstalled) return;
    uninstalled = true;
    installedOn.delete(drain);
    for (const signal of signals) process.removeListener(signal, handler);
    process.removeListener('uncaughtException', onException);
    process.removeListener('unhandledRejection', onRejection);
  };
}
