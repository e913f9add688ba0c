/**
 * The host's status values a store maps onto (running, pausing, paused), their check, and what they say
 * of a parked workflow.
 * @packageDocumentation
 */
import { ConfigurationError } from '../errors.js';
import { checkName, checkOptionsObject, describeValue, invalid } from '../validate.js';
import type { ParkedState } from '../workflow-store.js';

/** The host's status values, as stored in its status column. */
export interface WorkflowStatuses {
  readonly running: string;
  /** A workflow the host is still winding down: `park()` writes it (else `paused`), the host moves it on. */
  readonly pausing?: string | undefined;
  readonly paused: string;
  /**
   * Where crash recovery moves a workflow it recovered `maxRecoveries` times already; without it, such a
   * workflow keeps its status and is reported `failed`.
   */
  readonly failed?: string | undefined;
}

/**
 * Checks the `statuses` option named `name` (`defaults` when undefined): an object of distinct,
 * non-empty strings without NUL (SQL literals end at one). @internal
 */
export function checkStatuses(name: string, value: unknown, defaults: WorkflowStatuses): WorkflowStatuses {
  if (value === undefined) return defaults;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    invalid(name, 'an object `{ running, pausing?, paused, failed? }`', value);
  }
  const given = checkOptionsObject(name, value, ['running', 'pausing', 'paused', 'failed']);
  const check = (key: string, value: unknown): string => {
    const status = checkName(`${name}.${key}`, value);
    if (status.includes('\u0000')) invalid(`${name}.${key}`, 'a string without NUL characters', status);
    return status;
  };
  const running = check('running', given.running);
  const paused = check('paused', given.paused);
  const pausing = given.pausing === undefined ? undefined : check('pausing', given.pausing);
  const failed = given.failed === undefined ? undefined : check('failed', given.failed);
  const all = [running, paused, pausing, failed].filter((s) => s !== undefined);
  if (new Set(all).size !== all.length) {
    throw new ConfigurationError(
      `Expected \`${name}\` to hold distinct values, got running ${describeValue(running)}, ` +
        `pausing ${describeValue(pausing)}, paused ${describeValue(paused)}` +
        (failed === undefined ? '' : `, failed ${describeValue(failed)}`),
    );
  }
  return Object.freeze({ running, pausing, paused, failed });
}

/** The state of a parked workflow whose host status is `status`. @internal */
export function parkedStateOf(statuses: WorkflowStatuses, status: unknown): ParkedState {
  if (status === statuses.paused) return 'paused';
  return statuses.pausing !== undefined && status === statuses.pausing ? 'pausing' : 'other';
}
