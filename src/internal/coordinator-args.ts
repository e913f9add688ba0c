/**
 * Argument checks shared by the Coordinator adapters, so that every one answers bad input alike. A signal
 * already aborted throws its reason, so the call rejects before it sends anything.
 * @internal
 */
import { checkName, checkNonNegative, checkOptionsObject, checkPositive } from '../validate.js';
import { checkCallOptions, checkSignal } from './store-args.js';

/** Checks a `ttlMs`; an adapter with a narrower range passes its own. */
export type TtlCheck = (value: unknown) => number;

const anyTtl: TtlCheck = (value) => checkPositive('ttlMs', value);

/** `acquire(name, { ttlMs, timeoutMs, signal })`. */
export function checkAcquire(
  name: unknown,
  options: unknown,
  checkTtl: TtlCheck = anyTtl,
): { ttlMs: number; timeoutMs: number; signal: AbortSignal | undefined } {
  checkName('name', name);
  const o = checkOptionsObject('acquire()', options, ['ttlMs', 'timeoutMs', 'signal']);
  const ttlMs = checkTtl(o.ttlMs);
  const timeoutMs = checkNonNegative('timeoutMs', o.timeoutMs);
  const signal = checkSignal(o.signal);
  signal?.throwIfAborted();
  return { ttlMs, timeoutMs, signal };
}

/** `join(group, memberId, { ttlMs, signal })`. */
export function checkJoin(
  group: unknown,
  memberId: unknown,
  options: unknown,
  checkTtl: TtlCheck = anyTtl,
): { ttlMs: number; signal: AbortSignal | undefined } {
  checkName('group', group);
  checkName('memberId', memberId);
  const o = checkOptionsObject('join()', options, ['ttlMs', 'signal']);
  const ttlMs = checkTtl(o.ttlMs);
  const signal = checkSignal(o.signal);
  signal?.throwIfAborted();
  return { ttlMs, signal };
}

/** `members(group, { signal })`. */
export function checkMembers(group: unknown, options: unknown): AbortSignal | undefined {
  checkName('group', group);
  const signal = checkCallOptions('members()', options);
  signal?.throwIfAborted();
  return signal;
}
