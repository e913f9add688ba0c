/**
 * Argument checks and paging shared by the WorkflowStore adapters (and the coordinators' `{ signal }`),
 * so that every adapter answers bad input with the same message.
 * @internal
 */
import { checkCount, checkName, checkOptionsObject, invalid } from '../validate.js';
import type { Fence, Page } from '../workflow-store.js';

/** `ids` must be an array of non-empty strings. */
export function checkIds(ids: unknown): readonly string[] {
  if (!Array.isArray(ids)) invalid('ids', 'an array of workflow ids', ids);
  ids.forEach((id: unknown, i) => checkName(`ids[${i}]`, id));
  return ids as readonly string[];
}

/** `fence` must be `{ memberId: string, token: bigint | undefined }`. */
export function checkFence(fence: unknown): Fence {
  if (fence === null || typeof fence !== 'object') invalid('fence', 'an object', fence);
  const { memberId, token } = fence as Record<string, unknown>;
  checkName('fence.memberId', memberId);
  if (token !== undefined && typeof token !== 'bigint')
    invalid('fence.token', 'a bigint or undefined', token);
  return fence as Fence;
}

/** `signal` must be an `AbortSignal` or undefined. */
export function checkSignal(value: unknown): AbortSignal | undefined {
  if (value !== undefined && !(value instanceof AbortSignal)) invalid('signal', 'an AbortSignal', value);
  return value;
}

/** The `{ signal }` options of the call `where` (`park()`...), checked; an aborted signal passes. */
export function checkCallOptions(where: string, options: unknown): AbortSignal | undefined {
  return checkSignal(checkOptionsObject(where, options, ['signal']).signal);
}

/** List options: a whole `limit` from 1 up, an optional string `cursor`, an optional `signal`. */
export function checkList(
  where: string,
  options: unknown,
): { limit: number; cursor: string | undefined; signal: AbortSignal | undefined } {
  const o = checkOptionsObject(where, options, ['limit', 'cursor', 'signal']);
  const limit = checkCount('limit', o.limit);
  if (o.cursor !== undefined && typeof o.cursor !== 'string')
    invalid('cursor', 'a string or undefined', o.cursor);
  return { limit, cursor: o.cursor as string | undefined, signal: checkSignal(o.signal) };
}

/** A page from `limit + 1` rows in key order: the extra row says more follow; the cursor is the last key. */
export function pageOf<T>(rows: readonly T[], limit: number, key: (item: T) => string): Page<T> {
  if (rows.length <= limit) return { items: rows, cursor: undefined };
  const kept = rows.slice(0, limit);
  return { items: kept, cursor: key(kept[kept.length - 1] as T) };
}

/** One result per id, in order: `outcome` for the ids in `done` (a repeated id once), else `skipped`. */
export function resultsOf<O extends string>(
  ids: readonly string[],
  done: ReadonlySet<string>,
  outcome: O,
): { readonly id: string; readonly outcome: O | 'skipped' }[] {
  const reported = new Set<string>();
  return ids.map((id) => {
    if (!done.has(id) || reported.has(id)) return { id, outcome: 'skipped' };
    reported.add(id);
    return { id, outcome };
  });
}
