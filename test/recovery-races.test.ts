/**
 * Property-based race tests of crash recovery on the memory adapters: members start, shut down and crash
 * in random interleavings, fast-check's scheduler deciding when each coordinator and store call lands and
 * when its answer comes back. A crash drops the member's membership and frees its locks (as their TTLs
 * would), and abandons every call it has in progress: one not landed yet never lands, one landed is never
 * answered. Checks invariants 11 and 12 of DESIGN.md once one last member has started and resumed; with
 * a store that knows who drives what, also while live members recover a crashed peer's workflows.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DrainController } from '../src/index.js';
import type { Coordinator, Lease, Membership, WorkflowStore } from '../src/index.js';
import { MemoryBackend, MemoryCoordinator, MemoryWorkflowStore } from '../src/adapters/memory/index.js';

type Scheduler = fc.Scheduler;
type Fate = 'stop' | 'crash' | 'crash-in-start' | 'crash-in-stop';
type Initial = 'running' | 'parked' | 'user-paused' | 'succeeded';
/** What the recovery invariants are checked against: effective recoveries, and what may strand a workflow. */
type Event =
  { readonly kind: 'recover'; readonly id: string } | { readonly kind: 'crash' | 'dirty' | 'leave' };

const GROUP = 'g';
const STORE_METHODS = [
  'listActive',
  'park',
  'listParked',
  'unpark',
  'raiseFence',
  'notePaused',
  'readGeneration',
  'enterGeneration',
  'leaveGeneration',
  'recover',
  'listOwned',
  'evictMembers',
] as const;
const never = new Promise<never>(() => {});

/** A member of the run, and what its crash needs: whether it is dead, what it holds in the backend. */
interface Node {
  readonly id: string;
  dead: boolean;
  readonly leases: Set<Lease>;
  readonly memberships: Set<Membership>;
  /** Where leaving the group is logged. */
  readonly events: Event[];
  /** The steps of its calls so far: each call lands, then answers. */
  steps: number;
  /** The step at which it crashes, if it is to crash at one. */
  crashAt: number | undefined;
  crash(): void;
}

/** Counts a step of the member's calls (crashing it at its `crashAt`); whether it is dead. */
function dies(node: Node): boolean {
  if (++node.steps === node.crashAt) node.crash();
  return node.dead;
}

/**
 * Runs `call` when the scheduler lets it land, and answers when the scheduler says; a dead member's call
 * never lands, and a call landed before its member died is never answered.
 */
async function gated<T>(s: Scheduler, node: Node, what: string, call: () => Promise<T>): Promise<T> {
  await s.schedule(Promise.resolve(), `${node.id} ${what}`);
  if (dies(node)) return never;
  let answer: { value: T } | { error: unknown };
  try {
    answer = { value: await call() };
  } catch (error) {
    answer = { error };
  }
  await s.schedule(Promise.resolve(), `${node.id} ${what}: answer`);
  if (dies(node)) return never;
  if ('error' in answer) throw answer.error;
  return answer.value;
}

/** What the backend would do once a dead member's TTLs ran out: free its locks, drop its membership. */
function expire(node: Node): void {
  for (const lease of node.leases) void lease.release().catch(() => {});
  for (const membership of node.memberships) void membership.leave().catch(() => {});
  node.leases.clear();
  node.memberships.clear();
}

function scheduledCoordinator(inner: Coordinator, s: Scheduler, node: Node): Coordinator {
  /** Tracks a lease or membership while the member may die holding it; one obtained after death expires. */
  const hold = <H>(set: Set<H>, held: H): H => {
    set.add(held);
    if (node.dead) expire(node);
    return held;
  };
  return {
    capabilities: inner.capabilities,
    acquire: (name, options) =>
      gated(s, node, `acquire ${name}`, async () => {
        const lease = hold(node.leases, await inner.acquire(name, options));
        return {
          name: lease.name,
          token: lease.token,
          signal: lease.signal,
          get deadline() {
            return lease.deadline;
          },
          release: (o) =>
            gated(s, node, 'release', () => {
              node.leases.delete(lease);
              return lease.release(o);
            }),
        };
      }),
    join: (group, memberId, options) =>
      gated(s, node, 'join', async () => {
        const m = hold(node.memberships, await inner.join(group, memberId, options));
        const leave = (o?: { signal?: AbortSignal }) =>
          gated(s, node, 'leave', () => {
            node.memberships.delete(m);
            node.events.push({ kind: 'leave' });
            return m.leave(o);
          });
        return { group: m.group, memberId: m.memberId, incarnation: m.incarnation, signal: m.signal, leave };
      }),
    members: (group, options) => gated(s, node, 'members', () => inner.members(group, options)),
    close: () => inner.close(),
  };
}

function scheduledStore(inner: WorkflowStore, s: Scheduler, node: Node): WorkflowStore {
  const store: Record<string, unknown> = { capabilities: inner.capabilities };
  for (const method of STORE_METHODS) {
    const f = inner[method] as ((...args: unknown[]) => Promise<unknown>) | undefined;
    if (f !== undefined)
      store[method] = (...args: unknown[]) => gated(s, node, method, () => f.apply(inner, args));
  }
  return store as unknown as WorkflowStore;
}

/**
 * The shared store, logging each effective recovery and each generation left dirty as the call is made
 * (the memory store writes synchronously, so the log is in the order of the writes); `onRecover` is told
 * who recovered, when a recovery took effect.
 */
function loggedStore(
  store: MemoryWorkflowStore,
  events: Event[],
  onRecover: (memberId: string, ids: readonly string[]) => void,
): WorkflowStore {
  const { listOwned, evictMembers } = store;
  return {
    ...(listOwned && evictMembers && { listOwned, evictMembers }),
    capabilities: store.capabilities,
    listActive: (o) => store.listActive(o),
    park: (ids, f, o) => store.park(ids, f, o),
    listParked: (o) => store.listParked(o),
    unpark: (ids, f, o) => store.unpark(ids, f, o),
    raiseFence: (f, o) => store.raiseFence(f, o),
    notePaused: (ids, o) => store.notePaused(ids, o),
    readGeneration: (g, o) => store.readGeneration(g, o),
    enterGeneration: (g, m, f, o) => store.enterGeneration(g, m, f, o),
    leaveGeneration: (g, ids, end, f, o) => {
      if (end === 'dirty') events.push({ kind: 'dirty' });
      return store.leaveGeneration(g, ids, end, f, o);
    },
    recover: (ids, f, o) => {
      const running = ids.filter((id) => store.get(id)?.status === 'running');
      const result = store.recover(ids, f, o);
      const recovered = running.filter((id) => store.get(id)?.status !== 'running');
      for (const id of recovered) events.push({ kind: 'recover', id });
      if (recovered.length > 0) onRecover(f.memberId, recovered);
      return result;
    },
  };
}

/** Releases scheduled tasks, in the scheduler's order, until `promise` settles. */
async function until<T>(s: Scheduler, promise: Promise<T>): Promise<T> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  while (!settled) {
    if (s.count() > 0) await s.waitNext(1);
    else await new Promise((resolve) => setImmediate(resolve));
  }
  return promise;
}

const initialState = fc.constantFrom<Initial>('running', 'running', 'parked', 'user-paused', 'succeeded');
const fate = fc.constantFrom<Fate>('stop', 'crash', 'crash-in-start', 'crash-in-stop');
/** The step (a call landing, or its answer) at which a member crashes in its start or its shutdown. */
const step = fc.integer({ min: 1, max: 40 });

describe('crash recovery under random interleavings of starts, shutdowns and crashes (memory adapters)', () => {
  it('invariants 11 and 12: nothing stranded, nothing recovered twice per crash, nothing a user paused touched', async () => {
    await races(false);
  });

  it("with owners (peer checks recover crashed peers while others run): the same, and never a live member's workflow", async () => {
    await races(true);
  });
});

/**
 * The property. With `owners`, each workflow the group drives is owned by one of the initial members, and
 * running members check for crashed peers every few milliseconds (real timers, between scheduled steps).
 */
async function races(owners: boolean): Promise<void> {
  /** Recoveries of a crashed peer while others ran: the owners' runs must exercise them. */
  let peerCrashes = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(initialState, { minLength: 1, maxLength: 8 }),
      // The first member never crashes in its start: the workflows start out driven by a registered member.
      fc.tuple(fc.constantFrom<Fate>('stop', 'crash', 'crash-in-stop'), step),
      fc.array(fc.tuple(fate, step), { maxLength: 2 }),
      fc.array(fc.tuple(fate, step), { maxLength: 2 }),
      fc.integer({ min: 1, max: 3 }),
      fc.scheduler(),
      async (states, first, more, lateOnes, batchSize, s) => {
        const backend = new MemoryBackend();
        const store = new MemoryWorkflowStore({ owners });
        const events: Event[] = [];
        const members: { readonly node: Node; readonly drain: DrainController }[] = [];
        // Invariant 12: a recovery never takes effect while another member is alive and running; with
        // owners, never on a workflow whose owner is alive and running.
        const overLive: string[] = [];
        const shared = loggedStore(store, events, (memberId, recovered) => {
          for (const { node, drain } of members) {
            if (node.dead || drain.state !== 'running') continue;
            if (!owners && node.id !== memberId)
              overLive.push(`${memberId} recovered while ${node.id} was running`);
            for (const id of owners ? recovered : [])
              if (store.ownerOf(id) === node.id)
                overLive.push(`${memberId} recovered ${id} while its owner ${node.id} was running`);
          }
        });
        const ids = states.map((_, i) => `w${i}`);
        const initialCount = 1 + more.length;
        for (const [i, state] of states.entries()) {
          const id = `w${i}`;
          const owner = owners ? `m${1 + (i % initialCount)}` : undefined;
          store.add(id, state === 'user-paused' ? 'paused' : state === 'parked' ? 'running' : state, owner);
          if (state === 'parked') await store.park([id], { memberId: 'earlier', token: undefined });
        }
        const driven = ids.filter((_, i) => states[i] === 'running' || states[i] === 'parked');
        const untouched = ids.filter((id) => !driven.includes(id));
        const before = new Map(untouched.map((id) => [id, store.get(id)]));
        const coordinators: Coordinator[] = [];
        let n = 0;

        /**
         * A member meeting `fate`, crashing (for the fates that say so) at step `k` of its start or of its
         * shutdown, or when the scheduler says for `crash`. Its start begins at once; `ready` settles once it
         * is running (or dead), `end()` begins its fate and settles once it has stopped or died.
         */
        const member = (fate: Fate, k: number) => {
          let died!: () => void;
          const gone = new Promise<void>((resolve) => (died = resolve));
          const node: Node = {
            id: `m${++n}`,
            dead: false,
            leases: new Set(),
            memberships: new Set(),
            events,
            steps: 0,
            crashAt: fate === 'crash-in-start' ? k : undefined,
            crash() {
              if (node.dead) return;
              node.dead = true;
              events.push({ kind: 'crash' });
              expire(node);
              died();
            },
          };
          const inner = new MemoryCoordinator({ backend });
          coordinators.push(inner);
          const drain = new DrainController({
            group: GROUP,
            memberId: node.id,
            coordinator: scheduledCoordinator(inner, s, node),
            store: scheduledStore(shared, s, node),
            shutdownTimeoutMs: 20_000,
            resumeTimeoutMs: 20_000,
            memberTtlMs: 60_000,
            lockTtlMs: 60_000,
            maxRecoveries: 1_000,
            batchSize,
            peerCheckIntervalMs: owners ? 2 : 0,
          });
          members.push({ node, drain });
          drain.on('recovery', (r) => {
            if (r.reason === 'peer-crash' && r.recovered > 0) peerCrashes++;
          });
          const started = drain.start().then(() => drain.whenResumed());
          // One whose start ends before its crash step dies right then.
          const ready: Promise<unknown> =
            fate === 'crash-in-start' ? Promise.race([gone, started.then(() => node.crash())]) : started;
          const end = (): Promise<unknown> => {
            if (fate === 'stop') return drain.shutdown();
            if (fate === 'crash') return s.schedule(Promise.resolve(), `${node.id} crashes`).then(node.crash);
            if (fate === 'crash-in-start') return ready;
            node.crashAt = node.steps + k;
            return Promise.race([gone, drain.shutdown()]);
          };
          return { node, drain, ready, end, fate };
        };

        try {
          // 1. The initial members start together (some die on the way); the others settle their resume.
          const initial = [first, ...more].map(([f, k]) => member(f, k));
          await until(s, Promise.all(initial.map((m) => m.ready)));

          // 2. Each meets its fate while late members start, and meet theirs.
          // With owners, the members that are to stop keep running a little (real time) while the others
          // crash, so that their peer checks find the crashes.
          const later = (m: { fate: Fate; end(): Promise<unknown> }) =>
            owners && (m.fate === 'stop' || m.fate === 'crash-in-stop')
              ? new Promise((resolve) => setTimeout(resolve, 15)).then(() => m.end())
              : m.end();
          const ends = initial.map(later);
          const late = lateOnes.map(([f, k]) => member(f, k)).map((m) => m.ready.then(() => m.end()));
          await until(s, Promise.all([...ends, ...late]));

          // 3. Every member has stopped or died. One last member starts, alone, and resumes.
          const resumesBefore = new Map(driven.map((id) => [id, store.resumeCount(id)]));
          const final = member('stop', 0);
          await until(s, final.drain.start());
          const resumed = await until(s, final.drain.whenResumed() as Promise<unknown>);
          expect(resumed).toMatchObject({ complete: true, stillPausing: 0, errors: [] });
          const recovery = (await final.drain.whenResumed())?.recovery;
          expect(recovery).toMatchObject({ complete: true, errors: [] });
          expect(recovery?.reason).not.toBe('live-peers');
          expect(await store.readGeneration(GROUP)).toMatchObject({
            members: [{ memberId: final.node.id }],
            dirty: false,
          });

          // Invariant 11: nothing is left stranded: with every member gone, each workflow the group drove
          // was parked (by a last member, or by a recovery, the last one's included), and the last member
          // resumed it; every park was resumed once.
          for (const id of driven) {
            expect([id, store.get(id)]).toEqual([id, { id, status: 'running', parked: false }]);
            expect([id, store.resumeCount(id) - (resumesBefore.get(id) ?? 0)]).toEqual([id, 1]);
            expect([id, store.parkCount(id)]).toEqual([id, store.resumeCount(id)]);
          }
          // ... and none is recovered twice for one crash: between two recoveries of a workflow, and before
          // its first, a member crashed, left the group (a starter takes a member that left for dead until
          // its shutdown writes the record) or left the generation dirty.
          const strandings: number[] = [];
          events.forEach((e, i) => e.kind !== 'recover' && strandings.push(i));
          for (const id of driven) {
            let last = -1;
            events.forEach((e, i) => {
              if (e.kind !== 'recover' || e.id !== id) return;
              expect([id, i, strandings.some((j) => j > last && j < i)]).toEqual([id, i, true]);
              last = i;
            });
          }
          // Invariant 12: what a user paused, or was not running, was never touched; nor what a live
          // member was driving.
          expect(overLive).toEqual([]);
          for (const id of untouched) {
            expect([id, store.get(id)]).toEqual([id, before.get(id)]);
            expect([id, store.parkCount(id), store.resumeCount(id), store.recoveryCount(id)]).toEqual([
              id,
              0,
              0,
              0,
            ]);
          }
          await until(s, final.drain.shutdown());
        } finally {
          await Promise.all(coordinators.map((c) => c.close()));
        }
      },
    ),
    // The owners' runs wait a little real time each: half as many keep the file's time in bounds.
    {
      numRuns: Math.ceil(Number(process.env.RACE_RUNS ?? 500) / (owners ? 2 : 1)),
      timeout: 5_000,
      verbose: 1,
    },
  );
  if (owners) expect(peerCrashes).toBeGreaterThan(0);
}
