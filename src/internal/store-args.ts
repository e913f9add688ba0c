/**
 * Argument checks and paging shared by the WorkflowStore adapters, so that every store answers bad
 * input with the same message naming the argument and the value.
 *
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

/** List options: a whole `limit` from 1 up and an optional string `cursor`. */
export function checkList(where: string, options: unknown): { limit: number; cursor: string | undefined } {
  const o = checkOptionsObject(where, options, ['limit', 'cursor']);
  const limit = checkCount('limit', o.limit);
  if (o.cursor !== undefined && typeof o.cursor !== 'string')
    invalid('cursor', 'a string or undefined', o.cursor);
  return { limit, cursor: o.cursor as string | undefined };
}

/**
 * A page from `limit + 1` rows fetched in key order: the extra row only says that more follow, and
 * the cursor is the key of the last row kept.
 */
export function pageOf<T>(rows: readonly T[], limit: number, key: (item: T) => string): Page<T> {
  if (rows.length <= limit) return { items: rows, cursor: undefined };
  const kept = rows.slice(0, limit);
  return { items: kept, cursor: key(kept[kept.length - 1] as T) };
}
