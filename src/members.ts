/**
 * Who else is alive in the group: the members list, with members close to expiry waited out while the
 * budget allows, as both the shutdown (is this member last?) and the start gate (did the members of
 * the last generation die?) need it.
 *
 * @internal
 */
import createDebug from 'debug';
import type { Coordinator, MemberInfo } from './coordinator.js';
import { DrainTimeoutError } from './errors.js';
import { call, remaining } from './internal/calls.js';
import { delay, now } from './internal/time.js';

const log = createDebug('graceful-drain:members');

/** A member seems dead when it has missed a heartbeat: less than half its TTL left. */
function nearExpiry(member: MemberInfo, fallbackTtlMs: number): boolean {
  if (member.expiresInMs === undefined) return false;
  return member.expiresInMs < (member.ttlMs ?? fallbackTtlMs) / 2;
}

/** What {@link livePeers} needs. */
export interface PeersQuery {
  readonly coordinator: Coordinator;
  readonly options: { readonly group: string; readonly memberId: string; readonly memberTtlMs: number };
  /** This member's own incarnation, if it joined: only that one is itself; another process under the same id is a peer. */
  readonly incarnation: string | undefined;
  /** The end of the caller's budget (monotonic): waiting out near-expiry peers may use half of what is left. */
  readonly end: number;
  readonly signal: AbortSignal;
  /** What the caller is doing, for the timeout's message. */
  readonly what: string;
  /**
   * Which members can keep the caller from acting (all, when omitted): only these are waited out, and a
   * fresh member outside them (a peer still starting, say) does not stop the wait for a dying one.
   */
  readonly matters?: ((member: MemberInfo) => boolean) | undefined;
}

/**
 * The other members that count as alive: lists them; when every one of them has missed a heartbeat,
 * waits until the last of them would expire, if that fits in half of what is left of the budget, and
 * lists again; otherwise counts them as alive (never act over a peer that may be alive).
 */
export async function livePeers(q: PeersQuery): Promise<readonly MemberInfo[]> {
  const { coordinator, options } = q;
  for (;;) {
    const members = await call((s) => coordinator.members(options.group, { signal: s }), {
      end: q.end,
      onTimeout: () => new DrainTimeoutError(`The ${q.what} budget ran out while listing members`),
      stop: q.signal,
    });
    const others = members.filter(
      (m) => !(m.memberId === options.memberId && m.incarnation === q.incarnation),
    );
    const relevant = q.matters === undefined ? others : others.filter(q.matters);
    if (relevant.length === 0 || relevant.some((m) => !nearExpiry(m, options.memberTtlMs))) return others;
    const wait = Math.max(...relevant.map((m) => m.expiresInMs ?? 0)) + 10;
    const ids = relevant.map((m) => m.memberId);
    if (now() + wait > q.end - remaining(q.end) / 2) {
      log('near-expiry peers cannot be waited out within the budget: %o', ids);
      return others;
    }
    log('waiting %d ms for near-expiry peers: %o', wait, ids);
    await delay(wait, q.signal);
  }
}
