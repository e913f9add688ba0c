import createDebug from 'debug';
import { ClosedError, ConfigurationError, EvictedMemberError, StaleTokenError } from '../../errors.js';
import { parkedStateOf, type WorkflowStatuses } from '../../internal/statuses.js';
import { checkCallOptions, checkFence, checkIds, checkList } from '../../internal/store-args.js';
import { checkName, checkOneOf, checkOptionsObject, invalid } from '../../validate.js';
import type {
  Fence,
  GenerationEnd,
  GenerationMember,
  GenerationRecord,
  ItemResult,
  ListOptions,
  NotePausedOutcome,
  Page,
  ParkedWorkflow,
  ParkOutcome,
  ParkPage,
  RecoverOptions,
  RecoverOutcome,
  RecoverPage,
  RecoverPageOptions,
  StoreCallOptions,
  StoreWarning,
  UnparkOutcome,
  UnparkPage,
  WorkflowStore,
  WorkflowStoreCapabilities,
} from '../../workflow-store.js';
import { compileStoreOptions, type MemoryWorkflowStoreOptions } from './options.js';

const debug = createDebug('graceful-drain:memory');

/** The host's status of a workflow in a {@link MemoryWorkflowStore}. */
export type MemoryWorkflowStatus = 'running' | 'pausing' | 'paused' | 'succeeded' | 'cancelled' | 'failed';

/** A workflow of a {@link MemoryWorkflowStore}, as {@link MemoryWorkflowStore.get} returns it. */
export interface MemoryWorkflow {
  /** The workflow's id. */
  readonly id: string;
  /** The host's status of it. */
  readonly status: MemoryWorkflowStatus;
  /** Whether it carries a parked-by-shutdown mark. */
  readonly parked: boolean;
}

/** Counts of effective writes, for tests of racing starts and shutdowns. */
export interface MemoryWorkflowStoreStats {
  /** Parks that paused a running workflow (skipped ones are not counted). */
  readonly parks: number;
  /** Unparks that resumed a workflow (skipped ones are not counted). */
  readonly resumes: number;
}

const STATUSES: readonly MemoryWorkflowStatus[] = [
  'running',
  'pausing',
  'paused',
  'succeeded',
  'cancelled',
  'failed',
];
const CAPABILITIES: WorkflowStoreCapabilities = Object.freeze({ fencing: 'monotonic' });
const NO_WARNINGS: readonly StoreWarning[] = Object.freeze([]);
/** The statuses as the shared mapping sees them: a mark survives `pausing` and `paused` only. */
const MAPPING: WorkflowStatuses = Object.freeze({ running: 'running', pausing: 'pausing', paused: 'paused' });

interface Entry {
  status: MemoryWorkflowStatus;
  mark: { readonly memberId: string; readonly token: bigint | undefined } | undefined;
  parks: number;
  resumes: number;
  /** Recoveries since the last clean end of a generation. */
  recoveries: number;
  /** The member that drives it, as the host records it (`setOwner()`). */
  owner: string | undefined;
  pauseTimer: NodeJS.Timeout | undefined;
}

/**
 * A {@link WorkflowStore} over an in-memory host table, with the host's side to drive it: for tests,
 * demos and single-process hosts. Pages are in id order, each after the last id returned. Fencing is
 * `monotonic`. Any status the host sets other than `pausing` or `paused` drops a park mark. Calls run
 * at once and whole: a `signal` matters only when aborted already. After `close()`, the `WorkflowStore`
 * methods reject with `ClosedError`; the host side keeps working.
 *
 * @example
 * ```ts
 * const store = new MemoryWorkflowStore({ pauseDelayMs: 50 });
 * store.add('wf-1');
 * await store.park(['wf-1'], { memberId: 'a', token: 1n }); // [{ id: 'wf-1', outcome: 'pausing' }]
 * store.get('wf-1'); // { id: 'wf-1', status: 'pausing', parked: true }
 * ```
 */
export class MemoryWorkflowStore implements WorkflowStore {
  /** `{ fencing: 'monotonic' }`. */
  readonly capabilities: WorkflowStoreCapabilities = CAPABILITIES;
  readonly #pauseDelayMs: number;
  readonly #entries = new Map<string, Entry>();
  /** The ids in order, rebuilt after an add or a remove. */
  #ids: readonly string[] | undefined;
  #highest: bigint | undefined;
  readonly #generations = new Map<
    string,
    { generation: number; members: Map<string, string>; dirty: boolean }
  >();
  /** The evicted incarnations, as `evictedKey()`s: rejected for good. */
  readonly #evicted = new Set<string>();
  #parks = 0;
  #resumes = 0;
  #closed = false;

  /**
   * With the `owners` option: lists the running workflows whose owner (`setOwner()`) is one of
   * `memberIds`, in id order, after `cursor`. See {@link WorkflowStore.listOwned}.
   */
  readonly listOwned?: (memberIds: readonly string[], options: ListOptions) => Promise<Page<string>>;
  /**
   * With the `owners` option: removes these members' entries (memberId and incarnation both matching)
   * from `group`'s record, and rejects every later call fenced with one of their incarnations with
   * `EvictedMemberError`. Idempotent. Fenced. See {@link WorkflowStore.evictMembers}.
   */
  readonly evictMembers?: (
    group: string,
    members: readonly GenerationMember[],
    fence: Fence,
    options?: StoreCallOptions,
  ) => Promise<void>;

  /** With the `pages` option: `listActive()` then `park()` of its page, at once. See {@link WorkflowStore.parkPage}. */
  readonly parkPage?: (fence: Fence, options: ListOptions) => Promise<ParkPage>;
  /**
   * With the `pages` option: `listParked()` then `unpark()` of its page's workflows not pausing, at once.
   * See {@link WorkflowStore.unparkPage}.
   */
  readonly unparkPage?: (fence: Fence, options: ListOptions) => Promise<UnparkPage>;
  /**
   * With the `pages` option: `listActive()` then `recover()` of its page, at once. See
   * {@link WorkflowStore.recoverPage}.
   */
  readonly recoverPage?: (fence: Fence, options: RecoverPageOptions) => Promise<RecoverPage>;

  constructor(options?: MemoryWorkflowStoreOptions) {
    const { pauseDelayMs, owners, pages } = compileStoreOptions(options);
    this.#pauseDelayMs = pauseDelayMs;
    if (owners) {
      this.listOwned = async (memberIds, o) => this.#listOwned(memberIds, o);
      this.evictMembers = async (group, members, fence, o) => this.#evictMembers(group, members, fence, o);
    }
    if (pages) {
      this.parkPage = async (fence, o) => this.#parkPage(fence, o);
      this.unparkPage = async (fence, o) => this.#unparkPage(fence, o);
      this.recoverPage = async (fence, o) => this.#recoverPage(fence, o);
    }
  }

  #parkPage(fence: Fence, options: ListOptions): ParkPage {
    const page = this.#page('parkPage()', options, (id, e) => (e.status === 'running' ? id : undefined));
    const results = this.#write('park', page.items, fence, { signal: options.signal }, this.#parkOne);
    return Object.freeze({ results, cursor: page.cursor });
  }

  #unparkPage(fence: Fence, options: ListOptions): UnparkPage {
    const page = this.#page(
      'unparkPage()',
      options,
      (id, e) => e.mark && { id, pausing: e.status === 'pausing' },
    );
    const ready = page.items.filter((w) => !w.pausing).map((w) => w.id);
    const results = this.#write('unpark', ready, fence, { signal: options.signal }, this.#unparkOne);
    return Object.freeze({ results, pausing: page.items.length - ready.length, cursor: page.cursor });
  }

  #listOwned(memberIds: readonly string[], options: ListOptions): Page<string> {
    const owners = new Set(checkIds(memberIds));
    return this.#page('listOwned()', options, (id, e) =>
      e.status === 'running' && e.owner !== undefined && owners.has(e.owner) ? id : undefined,
    );
  }

  #evictMembers(
    group: string,
    members: readonly GenerationMember[],
    fence: Fence,
    options: StoreCallOptions | undefined,
  ): void {
    if (!Array.isArray(members)) invalid('members', 'an array of { memberId, incarnation }', members);
    const list = members.map((m: GenerationMember | undefined, i) => ({
      memberId: checkName(`members[${i}].memberId`, m?.memberId),
      incarnation: checkName(`members[${i}].incarnation`, m?.incarnation),
    }));
    const g = this.#generationWrite('evictMembers()', group, fence, options);
    for (const m of list) {
      this.#evicted.add(evictedKey(m.memberId, m.incarnation));
      if (g.members.get(m.memberId) === m.incarnation) g.members.delete(m.memberId);
    }
    debug('evicted %o from %s', list, group);
  }

  /** Lists running workflows in id order, after `cursor`. */
  async listActive(options: ListOptions): Promise<Page<string>> {
    return this.#page('listActive()', options, (id, e) => (e.status === 'running' ? id : undefined));
  }

  /** Pauses and marks each running workflow (replacing a stale mark); one result per id, in order. */
  async park(
    ids: readonly string[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<ParkOutcome>[]> {
    return this.#write('park', ids, fence, options, this.#parkOne);
  }

  readonly #parkOne = (e: Entry | undefined, f: Fence): ParkOutcome =>
    e?.status === 'running' ? this.#park(e, f) : 'skipped';

  #park(e: Entry, { memberId, token }: Fence): 'paused' | 'pausing' {
    e.mark = { memberId, token };
    e.parks += 1;
    this.#parks += 1;
    if (this.#pauseDelayMs === 0) return this.#set(e, 'paused');
    this.#set(e, 'pausing');
    e.pauseTimer = setTimeout(() => {
      e.pauseTimer = undefined;
      if (e.status === 'pausing') e.status = 'paused';
    }, this.#pauseDelayMs).unref();
    return 'pausing';
  }

  /** Lists marked workflows in id order, after `cursor`, with the host's state of each. */
  async listParked(options: ListOptions): Promise<Page<ParkedWorkflow>> {
    return this.#page(
      'listParked()',
      options,
      (id, { mark, status }) => mark && Object.freeze({ id, state: parkedStateOf(MAPPING, status), ...mark }),
    );
  }

  /** Resumes each marked, paused workflow and clears marks; one result per id, in order. */
  async unpark(
    ids: readonly string[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<UnparkOutcome>[]> {
    return this.#write('unpark', ids, fence, options, this.#unparkOne);
  }

  readonly #unparkOne = (e: Entry | undefined): UnparkOutcome => {
    if (e?.mark === undefined || e.status === 'pausing') return 'skipped';
    e.mark = undefined;
    if (e.status !== 'paused') return 'skipped';
    this.#set(e, 'running');
    e.resumes += 1;
    this.#resumes += 1;
    return 'resumed';
  };

  /** Records `fence.token` as the highest seen, writing nothing else; a no-op for `token: undefined`. */
  async raiseFence(fence: Fence, options?: StoreCallOptions): Promise<void> {
    this.#checkOpen();
    const { memberId, token } = this.#checkFence(fence);
    checkCallOptions('raiseFence()', options)?.throwIfAborted();
    this.#checkEvicted(fence);
    this.#checkToken(token);
    debug('fence raised by %s (token %s)', memberId, token);
  }

  /**
   * A user paused these workflows: drops the park mark of each (`released`), so unpark never resumes it;
   * `skipped` when it carried none (a repeated id after its first). The status is left as it is.
   */
  async notePaused(
    ids: readonly string[],
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<NotePausedOutcome>[]> {
    this.#checkOpen();
    const list = checkIds(ids);
    checkCallOptions('notePaused()', options)?.throwIfAborted();
    const results = list.map((id) => {
      const e = this.#entries.get(id);
      if (e?.mark === undefined) return Object.freeze({ id, outcome: 'skipped' as const });
      e.mark = undefined;
      return Object.freeze({ id, outcome: 'released' as const });
    });
    debug('notePaused of %d workflows', list.length);
    return results;
  }

  /** The group's generation record; a group never seen reads `{ generation: 0, members: [], dirty: false }`. */
  async readGeneration(group: string, options?: StoreCallOptions): Promise<GenerationRecord> {
    this.#checkOpen();
    checkName('group', group);
    checkCallOptions('readGeneration()', options)?.throwIfAborted();
    const g = this.#generations.get(group);
    const members = [...(g?.members ?? [])]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([memberId, incarnation]) => Object.freeze({ memberId, incarnation }));
    return Object.freeze({
      generation: g?.generation ?? 0,
      members: Object.freeze(members),
      dirty: g?.dirty ?? false,
    });
  }

  /** Registers `member` as running in `group`, replacing an entry with its id. Fenced. */
  async enterGeneration(
    group: string,
    member: GenerationMember,
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<void> {
    // Checked before the fence moves: a rejected call writes nothing.
    const memberId = checkName('member.memberId', member?.memberId);
    const incarnation = checkName('member.incarnation', member.incarnation);
    this.#generationWrite('enterGeneration()', group, fence, options).members.set(memberId, incarnation);
  }

  /** Removes the entries of `memberIds` and ends the generation as `end` says. Fenced. */
  async leaveGeneration(
    group: string,
    memberIds: readonly string[],
    end: GenerationEnd,
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<void> {
    checkIds(memberIds);
    checkOneOf('end', end, ['none', 'clean', 'dirty'] as const);
    const g = this.#generationWrite('leaveGeneration()', group, fence, options);
    for (const id of memberIds) g.members.delete(id);
    if (end === 'dirty') g.dirty = true;
    if (end === 'clean') {
      g.dirty = false;
      g.generation += 1;
      for (const e of this.#entries.values()) e.recoveries = 0;
    }
  }

  /**
   * Hands back workflows a crash left running: counted, then parked (mode `park`) or only counted
   * (mode `count`); past `maxRecoveries`, set to `failed`. Not running: `skipped`. Fenced.
   */
  async recover(
    ids: readonly string[],
    fence: Fence,
    options: RecoverOptions,
  ): Promise<readonly ItemResult<RecoverOutcome>[]> {
    const { mode, max, signal } = recoverArgs('recover()', options, ['mode', 'maxRecoveries', 'signal']);
    return this.#write('recover', ids, fence, { signal }, this.#recoverOne(mode, max));
  }

  #recoverPage(fence: Fence, options: RecoverPageOptions): RecoverPage {
    const names = ['limit', 'cursor', 'mode', 'maxRecoveries', 'signal'];
    const { mode, max, signal } = recoverArgs('recoverPage()', options, names);
    const list = { limit: options.limit, cursor: options.cursor, signal };
    const page = this.#page('recoverPage()', list, (id, e) => (e.status === 'running' ? id : undefined));
    const results = this.#write('recover', page.items, fence, { signal }, this.#recoverOne(mode, max));
    return Object.freeze({ results, cursor: page.cursor });
  }

  /** Recovers one workflow, as {@link recover} says. */
  #recoverOne(mode: 'park' | 'count', max: number) {
    return (e: Entry | undefined, f: Fence): RecoverOutcome => {
      if (e?.status !== 'running') return 'skipped';
      if (e.recoveries >= max) {
        this.#set(e, 'failed');
        e.recoveries = 0;
        return 'failed';
      }
      e.recoveries += 1;
      return mode === 'park' ? this.#park(e, f) : 'counted';
    };
  }

  /** No warnings, ever: the statuses of this store are fixed. Rejects only when closed or aborted. */
  async diagnose(options?: StoreCallOptions): Promise<readonly StoreWarning[]> {
    this.#checkOpen();
    checkCallOptions('diagnose()', options)?.throwIfAborted();
    return NO_WARNINGS;
  }

  /** Clears the pending pause timers. Idempotent; never throws. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const e of this.#entries.values()) clearTimeout(e.pauseTimer);
  }

  /**
   * Adds a workflow to the host's table, driven by `owner` when given (see `setOwner()`). Throws
   * `ConfigurationError` when the id exists.
   */
  add(id: string, status: MemoryWorkflowStatus = 'running', owner?: string): void {
    checkName('id', id);
    checkOneOf('status', status, STATUSES);
    if (owner !== undefined) checkName('owner', owner);
    if (this.#entries.has(id)) throw new ConfigurationError(`Workflow ${JSON.stringify(id)} already exists`);
    this.#entries.set(id, {
      status,
      mark: undefined,
      parks: 0,
      resumes: 0,
      recoveries: 0,
      owner,
      pauseTimer: undefined,
    });
    this.#ids = undefined;
  }

  /**
   * Records which member drives the workflow (its member id), as a host's owner column would: the host
   * sets it when a worker takes the workflow up, and clears it (`undefined`) when none does. The store's
   * own calls never change it. Read by `listOwned()` (with the `owners` option).
   */
  setOwner(id: string, owner: string | undefined): void {
    if (owner !== undefined) checkName('owner', owner);
    this.#entry(id).owner = owner;
  }

  /** The workflow's owner as the host set it; `undefined` when none or unknown. */
  ownerOf(id: string): string | undefined {
    return this.#entries.get(id)?.owner;
  }

  /** A workflow's status and whether it is marked; `undefined` when unknown. */
  get(id: string): MemoryWorkflow | undefined {
    const e = this.#entries.get(id);
    return e && Object.freeze({ id, status: e.status, parked: e.mark !== undefined });
  }

  /** Every workflow in id order: a snapshot, for assertions. */
  snapshot(): readonly MemoryWorkflow[] {
    return this.#sortedIds().map((id) => this.get(id) as MemoryWorkflow);
  }

  /** A user pauses the workflow: `paused`, its park mark dropped (`setStatus()` then `notePaused()`). */
  userPause(id: string): void {
    const e = this.#entry(id);
    e.mark = undefined;
    this.#set(e, 'paused');
  }

  /** A user resumes the workflow: `running`, its park mark dropped. */
  userResume(id: string): void {
    this.#set(this.#entry(id), 'running');
  }

  /** The workflow finishes: `succeeded`. */
  complete(id: string): void {
    this.#set(this.#entry(id), 'succeeded');
  }

  /** A user cancels the workflow: `cancelled`. */
  cancel(id: string): void {
    this.#set(this.#entry(id), 'cancelled');
  }

  /**
   * Sets the host's status as the engine or a user would (e.g. from `pausing` to `paused`). A park mark
   * is kept while the status stays `pausing` or `paused`, and dropped by any other status.
   */
  setStatus(id: string, status: MemoryWorkflowStatus): void {
    this.#set(this.#entry(id), checkOneOf('status', status, STATUSES));
  }

  /** Deletes a workflow from the host's table, its park mark with it. Throws for an unknown id. */
  remove(id: string): void {
    clearTimeout(this.#entry(id).pauseTimer);
    this.#entries.delete(id);
    this.#ids = undefined;
  }

  /** Effective parks and resumes so far. */
  get stats(): MemoryWorkflowStoreStats {
    return Object.freeze({ parks: this.#parks, resumes: this.#resumes });
  }

  /** How many times this workflow was effectively parked (0 when unknown). */
  parkCount(id: string): number {
    return this.#entries.get(id)?.parks ?? 0;
  }

  /** How many times this workflow was recovered since the last clean end of a generation (0 when unknown). */
  recoveryCount(id: string): number {
    return this.#entries.get(id)?.recoveries ?? 0;
  }

  /** How many times this workflow was effectively resumed (0 when unknown). */
  resumeCount(id: string): number {
    return this.#entries.get(id)?.resumes ?? 0;
  }

  /** The highest fencing token a write carried; `undefined` before any fenced write. */
  get highestToken(): bigint | undefined {
    return this.#highest;
  }

  #generationWrite(
    what: string,
    group: string,
    fence: Fence,
    options: StoreCallOptions | undefined,
  ): { generation: number; members: Map<string, string>; dirty: boolean } {
    this.#checkOpen();
    checkName('group', group);
    const { token } = this.#checkFence(fence);
    checkCallOptions(what, options)?.throwIfAborted();
    this.#checkEvicted(fence);
    this.#checkToken(token);
    let g = this.#generations.get(group);
    if (g === undefined)
      this.#generations.set(group, (g = { generation: 0, members: new Map(), dirty: false }));
    return g;
  }

  #write<O extends string>(
    what: 'park' | 'unpark' | 'recover',
    ids: readonly string[],
    fence: Fence,
    options: StoreCallOptions | undefined,
    one: (e: Entry | undefined, fence: Fence) => O,
  ): readonly ItemResult<O>[] {
    this.#checkOpen();
    const list = checkIds(ids);
    const checked = this.#checkFence(fence);
    checkCallOptions(`${what}()`, options)?.throwIfAborted();
    this.#checkEvicted(checked);
    this.#checkToken(checked.token);
    const results = list.map((id) => Object.freeze({ id, outcome: one(this.#entries.get(id), checked) }));
    debug('%s of %d workflows by %s (token %s)', what, list.length, checked.memberId, checked.token);
    return results;
  }

  // Any status set by the host or a user cancels a pending simulated pause: they took over. A status
  // other than pausing or paused ends the pause the mark belonged to, so the mark goes with it.
  #set<S extends MemoryWorkflowStatus>(e: Entry, status: S): S {
    clearTimeout(e.pauseTimer);
    e.pauseTimer = undefined;
    e.status = status;
    if (parkedStateOf(MAPPING, status) === 'other') e.mark = undefined;
    return status;
  }

  #checkFence(fence: Fence): Fence {
    const checked = checkFence(fence);
    if (checked.incarnation !== undefined) checkName('fence.incarnation', checked.incarnation);
    return checked;
  }

  /** Before anything is written: an evicted incarnation writes nothing, ever. */
  #checkEvicted({ memberId, incarnation }: Fence): void {
    if (incarnation !== undefined && this.#evicted.has(evictedKey(memberId, incarnation)))
      throw new EvictedMemberError(memberId, incarnation);
  }

  #checkToken(token: bigint | undefined): void {
    if (token === undefined) return;
    if (this.#highest !== undefined && token < this.#highest) throw new StaleTokenError(token, this.#highest);
    this.#highest = token;
  }

  #entry(id: string): Entry {
    const e = this.#entries.get(id);
    if (e === undefined) throw new ConfigurationError(`Unknown workflow ${JSON.stringify(id)}`);
    return e;
  }

  #sortedIds(): readonly string[] {
    return (this.#ids ??= [...this.#entries.keys()].sort());
  }

  #page<T>(where: string, options: ListOptions, pick: (id: string, e: Entry) => T | undefined): Page<T> {
    this.#checkOpen();
    const { limit, cursor, signal } = checkList(where, options);
    signal?.throwIfAborted();
    const ids = this.#sortedIds();
    // Keyset paging: start after the cursor id, whether or not that id still qualifies.
    const items: T[] = [];
    let lastId: string | undefined;
    for (let i = cursor === undefined ? 0 : indexAfter(ids, cursor); i < ids.length; i++) {
      const id = ids[i] as string;
      const item = pick(id, this.#entries.get(id) as Entry);
      if (item === undefined) continue;
      if (items.length === limit) return Object.freeze({ items: Object.freeze(items), cursor: lastId });
      items.push(item);
      lastId = id;
    }
    return Object.freeze({ items: Object.freeze(items), cursor: undefined });
  }

  #checkOpen(): void {
    if (this.#closed) throw new ClosedError('The MemoryWorkflowStore is closed');
  }
}

const evictedKey = (memberId: string, incarnation: string): string => `${memberId}\n${incarnation}`;

/** The checked `mode`, `maxRecoveries` and `signal` of a recovery's options. */
function recoverArgs(where: string, options: unknown, names: readonly string[]) {
  const { mode, maxRecoveries, signal } = checkOptionsObject(where, options, names);
  checkOneOf('options.mode', mode, ['park', 'count'] as const);
  if (!Number.isSafeInteger(maxRecoveries) || (maxRecoveries as number) < 0)
    invalid('options.maxRecoveries', 'a whole number from 0 up', maxRecoveries);
  return {
    mode: mode as 'park' | 'count',
    max: maxRecoveries as number,
    signal: signal as AbortSignal | undefined,
  };
}

/** The index of the first id above `key` in the sorted `ids`. */
function indexAfter(ids: readonly string[], key: string): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((ids[mid] as string) <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
