/**
 * Holes the shipped workflow-store contract suite (`graceful-drain/testing/vitest`) once had: it passed each
 * deliberately broken store below. Each test here failed before the contract case that closes its hole was
 * added to src/testing/vitest/workflow-store-contract.ts; the control shows the unbroken store passes.
 *
 * The suite registers its cases with vitest's `describe`/`it`/`afterEach`. To run it against a store and
 * *look at its verdict* from inside one test, `vitest` is mocked below so that, while `collecting` is set,
 * those three calls are recorded instead of registered; `runSuite()` then runs the recorded cases (with
 * their `afterEach` hooks) and returns each case's error, if any. Outside that window the mock is the real
 * vitest.
 */
import type * as VitestModule from 'vitest';
import { afterEach, describe, expect, it, vi } from 'vitest';

const mode = vi.hoisted(() => ({
  collect: undefined as undefined | ((kind: 'describe' | 'it' | 'afterEach', args: unknown[]) => void),
}));
vi.mock('vitest', async (importOriginal) => {
  const real = await importOriginal<typeof VitestModule>();
  const wrap =
    <F extends (...args: never[]) => unknown>(kind: 'describe' | 'it' | 'afterEach', original: F) =>
    (...args: Parameters<F>) =>
      mode.collect === undefined ? original(...args) : mode.collect(kind, args);
  return {
    ...real,
    describe: wrap('describe', real.describe),
    it: wrap('it', real.it),
    afterEach: wrap('afterEach', real.afterEach),
  };
});

import { StaleTokenError } from '../src/errors.js';
import type { HostStatus, WorkflowStoreHarness } from '../src/testing/index.js';
import { workflowStoreContract } from '../src/testing/vitest/index.js';
import type {
  Fence,
  ItemResult,
  ListOptions,
  NotePausedOutcome,
  Page,
  ParkedWorkflow,
  ParkOutcome,
  StoreCallOptions,
  UnparkOutcome,
  WorkflowStore,
} from '../src/workflow-store.js';

// ---------------------------------------------------------------------------------------------------
// A tiny runner for the suite's recorded cases.

type Case = { readonly title: string; readonly fn: () => unknown };
type Suite = {
  readonly title: string;
  readonly children: (Suite | Case)[];
  readonly hooks: (() => unknown)[];
};
type Verdict = { readonly title: string; readonly error: unknown };

async function collect(title: string, body: () => unknown): Promise<Suite> {
  const suite: Suite = { title, children: [], hooks: [] };
  const nested: { title: string; fn: () => unknown; at: number }[] = [];
  const previous = mode.collect;
  mode.collect = (kind, args) => {
    if (kind === 'afterEach') suite.hooks.push(args[0] as () => unknown);
    else if (kind === 'it') suite.children.push({ title: args[0] as string, fn: args[1] as () => unknown });
    else {
      nested.push({ title: args[0] as string, fn: args[1] as () => unknown, at: suite.children.length });
      suite.children.push({ title: '(pending)', fn: () => {} });
    }
  };
  try {
    await body();
  } finally {
    mode.collect = previous;
  }
  for (const n of nested) suite.children[n.at] = await collect(n.title, n.fn);
  return suite;
}

async function withTimeout(value: unknown, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      value,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`case timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Registers `register()`'s suite in collecting mode and runs every case, `afterEach` hooks included. */
async function runSuite(register: () => void, caseTimeoutMs = 20_000): Promise<Verdict[]> {
  const root = await collect('root', register);
  const verdicts: Verdict[] = [];
  const walk = async (suite: Suite, hooks: (() => unknown)[], path: string[]): Promise<void> => {
    const all = [...hooks, ...suite.hooks];
    for (const child of suite.children) {
      if ('children' in child) {
        await walk(child, all, [...path, child.title]);
        continue;
      }
      let error: unknown;
      try {
        await withTimeout(child.fn(), caseTimeoutMs);
      } catch (e) {
        error = e ?? new Error('rejected with undefined');
      }
      for (const hook of [...all].reverse()) {
        try {
          await withTimeout(hook(), caseTimeoutMs);
        } catch (e) {
          error ??= e;
        }
      }
      verdicts.push({ title: [...path, child.title].join(' > '), error });
    }
  };
  await walk(root, [], []);
  return verdicts;
}

const failures = (verdicts: readonly Verdict[]): string[] =>
  verdicts
    .filter((v) => v.error !== undefined)
    .map((v) => `${v.title}: ${String((v.error as Error)?.message ?? v.error).split('\n')[0]}`);

afterEach(() => {
  mode.collect = undefined;
});

// ---------------------------------------------------------------------------------------------------
// A small WorkflowStore over an in-memory host table, with switchable breaks. Unbroken, it passes the
// whole contract (the control below).

type StoreBreak =
  | 'offset-cursor-parked' // listParked pages by OFFSET: rows unparked between pages are skipped
  | 'text-token-compare' // tokens compared as decimal strings (as in a TEXT column)
  | 'keeps-mark-on-failed'; // the mark is dropped for running/succeeded/cancelled only, not for failed

type Row = { status: HostStatus; mark: { memberId: string; token: bigint | undefined } | undefined };

class BrokenStore implements WorkflowStore {
  readonly capabilities = { fencing: 'monotonic' } as const;
  readonly rows = new Map<string, Row>();
  #highest: bigint | undefined;
  constructor(readonly breaks: ReadonlySet<StoreBreak>) {}

  #page<T>(
    options: ListOptions,
    offsetCursor: boolean,
    pick: (id: string, r: Row) => T | undefined,
  ): Page<T> {
    options.signal?.throwIfAborted();
    const picked: { id: string; item: T }[] = [];
    for (const id of [...this.rows.keys()].sort()) {
      const item = pick(id, this.rows.get(id) as Row);
      if (item !== undefined) picked.push({ id, item });
    }
    let start = 0;
    if (options.cursor !== undefined)
      start = offsetCursor
        ? Number(options.cursor)
        : picked.findIndex((p) => p.id > (options.cursor as string));
    if (start < 0) start = picked.length;
    const slice = picked.slice(start, start + options.limit);
    const more = start + options.limit < picked.length;
    const cursor = !more ? undefined : offsetCursor ? String(start + options.limit) : slice.at(-1)?.id;
    return { items: slice.map((p) => p.item), cursor };
  }

  async listActive(options: ListOptions): Promise<Page<string>> {
    return this.#page(options, false, (id, r) => (r.status === 'running' ? id : undefined));
  }

  async listParked(options: ListOptions): Promise<Page<ParkedWorkflow>> {
    return this.#page(options, this.breaks.has('offset-cursor-parked'), (id, r) =>
      r.mark === undefined
        ? undefined
        : {
            id,
            state: r.status === 'paused' ? 'paused' : r.status === 'pausing' ? 'pausing' : 'other',
            ...r.mark,
          },
    );
  }

  #fence(fence: Fence, options: StoreCallOptions | undefined): void {
    options?.signal?.throwIfAborted();
    const { token } = fence;
    if (token === undefined) return;
    const highest = this.#highest;
    const lower = this.breaks.has('text-token-compare')
      ? highest !== undefined && String(token) < String(highest)
      : highest !== undefined && token < highest;
    if (lower) throw new StaleTokenError(token, highest as bigint);
    this.#highest = token;
  }

  async park(
    ids: readonly string[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<ParkOutcome>[]> {
    this.#fence(fence, options);
    return ids.map((id) => {
      const r = this.rows.get(id);
      if (r?.status !== 'running') return { id, outcome: 'skipped' };
      r.status = 'paused';
      r.mark = { memberId: fence.memberId, token: fence.token };
      return { id, outcome: 'paused' };
    });
  }

  async unpark(
    ids: readonly string[],
    fence: Fence,
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<UnparkOutcome>[]> {
    this.#fence(fence, options);
    return ids.map((id) => {
      const r = this.rows.get(id);
      if (r?.mark === undefined || r.status === 'pausing') return { id, outcome: 'skipped' };
      r.mark = undefined;
      if (r.status !== 'paused') return { id, outcome: 'skipped' };
      r.status = 'running';
      return { id, outcome: 'resumed' };
    });
  }

  async raiseFence(fence: Fence, options?: StoreCallOptions): Promise<void> {
    this.#fence(fence, options);
  }

  async notePaused(
    ids: readonly string[],
    options?: StoreCallOptions,
  ): Promise<readonly ItemResult<NotePausedOutcome>[]> {
    options?.signal?.throwIfAborted();
    return ids.map((id) => {
      const r = this.rows.get(id);
      if (r?.mark === undefined) return { id, outcome: 'skipped' };
      r.mark = undefined;
      return { id, outcome: 'released' };
    });
  }

  async close(): Promise<void> {}
}

/** A harness over a fresh store (its own table and fence) with `breaks`. */
function brokenHarness(...breaks: StoreBreak[]): WorkflowStoreHarness & { store: BrokenStore } {
  const store = new BrokenStore(new Set(breaks));
  const row = (id: string): Row => {
    const r = store.rows.get(id);
    if (r === undefined) throw new Error(`unknown ${id}`);
    return r;
  };
  return {
    store,
    add: async (id, status) => void store.rows.set(id, { status, mark: undefined }),
    status: async (id) => store.rows.get(id)?.status,
    setStatus: async (id, status) => {
      const r = row(id);
      r.status = status;
      const keeps =
        status === 'pausing' ||
        status === 'paused' ||
        (store.breaks.has('keeps-mark-on-failed') && status === 'failed');
      if (!keeps) r.mark = undefined;
    },
    remove: async (id) => void store.rows.delete(id),
    close: async () => {},
  };
}

const UNFENCED: Fence = { memberId: 'm', token: undefined };

/** Runs the suite against a store with `breaks`: the case `title` must be among its failures. */
async function caughtBy(title: string, ...breaks: StoreBreak[]): Promise<void> {
  const verdicts = await runSuite(() =>
    workflowStoreContract(() => brokenHarness(...breaks), { name: breaks.join(' ') }),
  );
  expect(failures(verdicts)).toContainEqual(expect.stringContaining(title));
}

// ---------------------------------------------------------------------------------------------------

describe('workflowStoreContract() fails the stores it once passed', () => {
  it('control: the unbroken store passes the whole suite', { timeout: 120_000 }, async () => {
    const verdicts = await runSuite(() => workflowStoreContract(() => brokenHarness(), { name: 'ok' }));
    expect(verdicts.length).toBeGreaterThan(50);
    expect(failures(verdicts)).toEqual([]);
  });

  // The resume loop (src/resume.ts) lists a page of parked workflows, unparks it, then asks for the next
  // page with the cursor: with OFFSET paging the rows that slid into the freed positions are never listed,
  // and the round ends with them still parked. The suite paged listParked over a static table only.
  it('listParked paged by OFFSET', { timeout: 120_000 }, async () => {
    const h = brokenHarness('offset-cursor-parked');
    const list = [...Array(10).keys()].map((i) => `w${i}`);
    for (const id of list) await h.add(id, 'running');
    await h.store.park(list, UNFENCED);
    let cursor: string | undefined;
    do {
      const page = await h.store.listParked({ limit: 3, cursor });
      const listed = page.items.map((p) => p.id);
      await h.store.unpark(listed, UNFENCED);
      cursor = page.cursor;
    } while (cursor !== undefined);
    // parked and forgotten by one resume round
    expect((await h.store.listParked({ limit: 100 })).items.length).toBeGreaterThan(0);
    await caughtBy('listParked > pages stay correct when each page is unparked', 'offset-cursor-parked');
  });

  // Every token the suite used came from nextToken(): all of one digit count, so string order was number
  // order. A coordinator's tokens start at 1: after 10, a write under 9 was accepted.
  it('fencing tokens compared as text', { timeout: 120_000 }, async () => {
    const h = brokenHarness('text-token-compare');
    await h.add('a', 'running');
    await h.store.raiseFence({ memberId: 'new', token: 10n });
    expect(await h.store.park(['a'], { memberId: 'old', token: 9n })).toEqual([
      { id: 'a', outcome: 'paused' },
    ]);
    await caughtBy('fencing > with monotonic fencing, tokens compare as numbers', 'text-token-compare');
  });

  // The suite moved marked workflows to running, succeeded and cancelled, never to failed: a store whose
  // drop rule lists statuses (a trigger `WHEN NEW.status IN (...)`) kept a failed workflow listed by
  // listParked, and resumed it should the host ever pause it again.
  it('a mark kept when the workflow moves to failed', { timeout: 120_000 }, async () => {
    const h = brokenHarness('keeps-mark-on-failed');
    await h.add('a', 'running');
    await h.store.park(['a'], UNFENCED);
    await h.setStatus('a', 'failed');
    await h.setStatus('a', 'paused'); // an operator pauses it, by hand
    expect(await h.store.unpark(['a'], UNFENCED)).toEqual([{ id: 'a', outcome: 'resumed' }]);
    await caughtBy('listParked > no longer lists a workflow whose status moved away', 'keeps-mark-on-failed');
  });
});
