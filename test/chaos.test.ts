/**
 * The chaos harness (chaos/): its checker finds what it must on small histories written by hand (each
 * check shown failing on a history that breaks it), the fault list and its documentation agree, and a
 * bounded run on every backend (fixed seeds, 15 s of faults each) ends with every check holding, faults
 * injected, and nothing left behind: no member process, no schema, no key. Longer soaks run on demand
 * (`npm run chaos`, see docs/reliability.md).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { ParkedWorkflow } from 'graceful-drain';
import { checkOwnCallers } from '../chaos/checking/check-callers.js';
import { checkLandings } from '../chaos/checking/check-landings.js';
import {
  checkCrashBounds,
  checkFencing,
  checkLeaseExclusion,
  checkTokens,
} from '../chaos/checking/check-locks.js';
import {
  checkClusterStops,
  checkNeverForgotten,
  checkNoParkOverPeers,
  checkParkResumeAlternate,
  checkUserPausesHeld,
} from '../chaos/checking/check-protocol.js';
import {
  checkCrashRecovered,
  checkPeerCrashRecovered,
  checkRecoveredOnce,
  checkRecoveryScope,
} from '../chaos/checking/check-recovery.js';
import { checkAttempts, checkNothingStranded } from '../chaos/checking/check-steps.js';
import { FAULT_KINDS, FAULTS, faultsFor, TIMINGS } from '../chaos/faults.js';
import { differenceTo, type HarnessEvent, type HistoryEntry, type MemberEvent } from '../chaos/history.js';
import { buildModel, type Model } from '../chaos/checking/model.js';
import type { HostSnapshot, StatusLogRow, WorkflowRow } from '../harness/host-db.js';
import { POSTGRES_URL, REDIS_URL } from './support/env.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const main = fileURLToPath(new URL('../chaos/main.ts', import.meta.url));
const folder = mkdtempSync(join(tmpdir(), 'graceful-drain-chaos-test-'));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

/** A history written by hand: `[t, who, event]`, in time order. */
function model(...lines: [number, string, MemberEvent | HarnessEvent][]): Model {
  const history = lines.map(([t, m, event], seq) => ({ t, m, pid: 1, seq, ...event }) as HistoryEntry);
  return buildModel(history, TIMINGS);
}

const spawned = (t: number, member: string, slot: number): [number, string, HarnessEvent] => [
  t,
  'harness',
  { type: 'spawn', member, slot, pid: slot },
];
const joined = (t: number, m: string): [number, string, MemberEvent] => [
  t,
  m,
  { type: 'join', incarnation: `${m}-1` },
];
const acquired = (t: number, m: string, token: number, deadline: number): [number, string, MemberEvent][] => [
  [t - 1, m, { type: 'acquire-start', name: 'g:start-stop' }],
  [t, m, { type: 'acquire', name: 'g:start-stop', token: String(token), deadline }],
];
const write = (
  t: number,
  m: string,
  kind: 'park' | 'unpark',
  token: number,
  outcomes: Record<string, string[]>,
): [number, string, MemberEvent][] => [
  [t, m, { type: `${kind}-start`, token: String(token), ids: Object.values(outcomes).flat(), lease: null }],
  [t + 1, m, { type: kind, token: String(token), outcomes }],
];

const userPause = (
  t: number,
  id: string,
  how: 'running' | 're-pause' | 'parked',
  statusSeq?: number,
): [number, string, HarnessEvent] => [
  t,
  'harness',
  { type: 'user-pause', id, step: 1, claim: null, how, ...(statusSeq === undefined ? {} : { statusSeq }) },
];
const userResume = (t: number, id: string, statusSeq = 0): [number, string, HarnessEvent] => [
  t,
  'harness',
  { type: 'user-resume', id, step: 1, from: 'paused', marked: true, userPaused: false, statusSeq },
];
const fence = (
  t: number,
  m: string,
  token: number,
  error?: { name: string; code: string; message: string },
): [number, string, MemberEvent][] => [
  [t, m, { type: 'fence-start', token: String(token) }],
  error === undefined
    ? [t + 1, m, { type: 'fence', token: String(token) }]
    : [t + 1, m, { type: 'fence-failed', token: String(token), error }],
];
const stale = { name: 'StaleTokenError', code: 'ERR_STALE_TOKEN', message: 'stale' };
/** A start gate's `recover()`, after it read the generation record. */
const recovered = (
  t: number,
  m: string,
  token: number,
  outcomes: Record<string, string[]>,
  generation = 3,
): [number, string, MemberEvent][] => [
  [t - 2, m, { type: 'generation-read', generation, members: [], dirty: false }],
  [
    t,
    m,
    {
      type: 'recover-start',
      token: String(token),
      ids: Object.values(outcomes).flat(),
      lease: null,
      mode: 'park',
      maxRecoveries: 3,
    },
  ],
  [t + 1, m, { type: 'recover', token: String(token), outcomes }],
];

/** The host's tables at the end, written by hand. */
function snapshot(
  workflows: readonly Pick<WorkflowRow, 'id' | 'status'>[],
  statusLog: readonly Omit<StatusLogRow, 'step'>[] = [],
): HostSnapshot {
  return {
    workflows: workflows.map((w) => ({ ...w, step: 1, steps: 6, owner: null })),
    stepLog: [],
    statusLog: statusLog.map((r) => ({ ...r, step: 1 })),
    userPauses: [],
  };
}
const mark = (id: string, state: ParkedWorkflow['state'] = 'paused'): ParkedWorkflow => ({
  id,
  state,
  memberId: 'm1',
  token: 1n,
});

describe('the shared clock', () => {
  it('differenceTo() keeps the tightest of its brackets: a pause between two reads does not skew it', () => {
    // The monotonic clock reads 1000, 2000, ...; the other clock runs 500 ahead of it, and the process
    // is paused for 14 between the first pair of reads (the first bracket is 14 wide), not after.
    let mono = 0;
    const monotonic = (): number => (mono += 1000);
    const reads = [1499, 1514, 2499.5, 2500.5, 3500, 3500];
    const other = (): number => reads.shift() ?? 4500;
    expect(differenceTo(other, monotonic)).toBe(500);
    // It stops at a bracket of no width.
    expect(reads).toEqual([]);
  });
});

describe('chaos checker', () => {
  it('checkFencing() finds a lower token accepted after a higher one, and passes them in order', () => {
    const bad = model(
      ...write(100, 'm1', 'park', 5, { paused: ['a'] }),
      ...write(200, 'm2', 'unpark', 4, { resumed: ['a'] }),
    );
    expect(checkFencing(bad).violations.map((v) => v.message)).toEqual([
      'the store accepted unpark by m2 with token 4 after it had accepted token 5 (park by m1)',
    ]);
    const good = model(
      ...write(100, 'm1', 'park', 4, { paused: ['a'] }),
      ...write(200, 'm2', 'unpark', 5, { resumed: ['a'] }),
    );
    expect(checkFencing(good).ok).toBe(true);
  });

  it('checkFencing() finds a stale write accepted after a newer holder had acted on its token', () => {
    const behind = model(
      spawned(0, 'm1', 1),
      spawned(0, 'm2', 2),
      ...acquired(100, 'm1', 5, 1600),
      ...acquired(2000, 'm2', 6, 3500),
      [2010, 'm2', { type: 'list-parked-start' }],
      ...write(2100, 'm1', 'park', 5, { paused: ['a'] }),
    );
    expect(checkFencing(behind).violations.map((v) => v.message)).toEqual([
      'the store accepted park by m1 with token 5 after m2 had taken token 6 and acted on it (list-parked at 2.010s)',
    ]);
  });

  it('checkTokens() finds one token granted twice, and a token lower than an earlier one', () => {
    const m = model(
      spawned(0, 'm1', 1),
      spawned(0, 'm2', 2),
      ...acquired(100, 'm1', 5, 1600),
      [200, 'm1', { type: 'release-start', token: '5' }],
      ...acquired(300, 'm2', 5, 1800),
      [400, 'm2', { type: 'release-start', token: '5' }],
      ...acquired(500, 'm1', 4, 2000),
    );
    expect(checkTokens(m).violations.map((v) => v.message)).toEqual([
      'token 5 of "g:start-stop" granted twice: to m1 and m2',
      'm1 got token 4 after m1 had got token 5',
      'm1 got token 4 after m2 had got token 5',
    ]);
  });

  it('checkLeaseExclusion() finds two holders at once, and a write sent after the lease ended', () => {
    const overlap = model(
      spawned(0, 'm1', 1),
      spawned(0, 'm2', 2),
      ...acquired(100, 'm1', 1, 1600),
      ...acquired(500, 'm2', 2, 2000),
    );
    expect(checkLeaseExclusion(overlap, 'redis').violations).toHaveLength(1);
    const handedOver = model(
      spawned(0, 'm1', 1),
      spawned(0, 'm2', 2),
      ...acquired(100, 'm1', 1, 1600),
      [400, 'm1', { type: 'release-start', token: '1' }],
      ...acquired(500, 'm2', 2, 2000),
    );
    expect(checkLeaseExclusion(handedOver, 'redis').ok).toBe(true);
    const late = model(
      spawned(0, 'm1', 1),
      ...acquired(100, 'm1', 1, 1600),
      ...write(1700, 'm1', 'park', 1, { paused: ['a'] }),
    );
    expect(checkLeaseExclusion(late, 'redis').violations[0]?.message).toMatch(
      /after its lease had ended: its local deadline had passed/,
    );
  });

  it('checkNoParkOverPeers() finds a park while a peer was alive, not one over a frozen peer or one still starting', () => {
    const peer = (freeze: boolean, started = true): Model =>
      model(
        spawned(0, 'm1', 1),
        spawned(0, 'm2', 2),
        joined(10, 'm1'),
        joined(20, 'm2'),
        ...((started ? [[30, 'm2', { type: 'ready' }]] : []) as [number, string, MemberEvent][]),
        ...((freeze
          ? [
              [3000, 'harness', { type: 'signal', member: 'm2', signal: 'SIGSTOP' }],
              [6000, 'harness', { type: 'signal', member: 'm2', signal: 'SIGCONT' }],
            ]
          : []) as [number, string, HarnessEvent][]),
        ...acquired(4000, 'm1', 1, 5500),
        [4010, 'm1', { type: 'members-start' }],
        [4011, 'm1', { type: 'members', members: [] }],
        ...write(4020, 'm1', 'park', 1, { paused: ['a'] }),
      );
    expect(checkNoParkOverPeers(peer(false)).violations.map((v) => v.members)).toEqual([['m1', 'm2']]);
    expect(checkNoParkOverPeers(peer(true)).ok).toBe(true);
    // m2 still in its start gate (intake closed): the park of m1's gate over it is no violation.
    expect(checkNoParkOverPeers(peer(false, false)).ok).toBe(true);
  });

  it('checkParkResumeAlternate() finds a resume without a park, a double park', () => {
    const m = model(
      ...write(100, 'm1', 'unpark', 1, { resumed: ['a'] }),
      ...write(200, 'm1', 'park', 2, { paused: ['b'] }),
      ...write(300, 'm2', 'park', 3, { pausing: ['b'] }),
    );
    expect(checkParkResumeAlternate(m).violations.map((v) => v.message)).toEqual([
      'a resumed by m1 (token 1) though it was not parked',
      'b parked twice: by m1 (token 2) and by m2 (token 3) with no resume between',
    ]);
  });

  it("checkParkResumeAlternate() takes a user's resume, or pause of a parked workflow, for the end of a park", () => {
    const m = model(
      ...write(100, 'm1', 'park', 1, { paused: ['a', 'b'] }),
      userResume(200, 'a'),
      userPause(250, 'b', 'parked'),
      ...write(400, 'm2', 'park', 2, { paused: ['a'] }),
      ...write(500, 'm2', 'unpark', 3, { resumed: ['a'] }),
    );
    expect(checkParkResumeAlternate(m).ok).toBe(true);
    // Without the user's resume between them, the second park is a double park.
    const without = model(
      ...write(100, 'm1', 'park', 1, { paused: ['a'] }),
      ...write(400, 'm2', 'park', 2, { paused: ['a'] }),
    );
    expect(checkParkResumeAlternate(without).ok).toBe(false);
  });

  it("checkUserPausesHeld() finds a user's pause undone: of a running workflow, again after a resume, of a parked one", () => {
    const m = model(
      // a: a user pauses it while it runs; a resume round resumes it anyway.
      userPause(100, 'a', 'running'),
      ...write(200, 'm1', 'unpark', 1, { resumed: ['a'] }),
      // b: parked; a user resumes it and pauses it again; the next start resumes it (the mark outlived
      // the pause it belonged to).
      ...write(300, 'm1', 'park', 2, { paused: ['b'] }),
      userResume(400, 'b'),
      userPause(450, 'b', 're-pause'),
      ...write(600, 'm2', 'unpark', 3, { resumed: ['b'] }),
      // c: parked; a user pauses it (notePaused); the next start resumes it.
      ...write(300, 'm1', 'park', 2, { paused: ['c'] }),
      userPause(500, 'c', 'parked'),
      ...write(700, 'm2', 'unpark', 4, { resumed: ['c'] }),
    );
    expect(checkUserPausesHeld(m).violations.map((v) => v.message)).toEqual([
      'a was paused by a user at 0.000s, then resumed by m1 (token 1) at 0.100s',
      'b was resumed and paused again by a user at 0.350s, then resumed by m2 (token 3) at 0.500s',
      'c was paused by a user while parked (notePaused) at 0.400s, then resumed by m2 (token 4) at 0.600s',
    ]);
  });

  it("checkUserPausesHeld() passes a resume sent before the user's pause, or after the user's own resume", () => {
    const m = model(
      ...write(100, 'm1', 'park', 1, { paused: ['a', 'b'] }),
      // a: the resume was sent before the user paused it (the pause then found it running).
      ...write(200, 'm2', 'unpark', 2, { resumed: ['a'] }),
      userPause(205, 'a', 'running'),
      // b: the user paused it, then resumed it; it was parked again and resumed: no pause in force.
      userPause(300, 'b', 'parked'),
      userResume(400, 'b'),
      ...write(500, 'm1', 'park', 3, { paused: ['b'] }),
      ...write(600, 'm2', 'unpark', 4, { resumed: ['b'] }),
    );
    expect(checkUserPausesHeld(m).ok).toBe(true);
  });

  it('checkParkResumeAlternate() allows for a park cut short by a crash: it may have landed', () => {
    const m = model(
      spawned(0, 'm1', 1),
      [100, 'm1', { type: 'park-start', token: '1', ids: ['a'], lease: null }],
      [110, 'harness', { type: 'signal', member: 'm1', signal: 'SIGKILL' }],
      ...write(300, 'm2', 'unpark', 2, { resumed: ['a'] }),
    );
    expect(checkParkResumeAlternate(m).ok).toBe(true);
  });

  it('checkNeverForgotten() finds a complete resume round, listed after a park, that left it behind', () => {
    const round = (listedAt: number): [number, string, MemberEvent][] => [
      [listedAt, 'm2', { type: 'list-parked-start' }],
      [listedAt + 1, 'm2', { type: 'list-parked', parked: [], more: false }],
      [300, 'm2', { type: 'resume-round', resumed: 0, stillPausing: 0, complete: true, errors: 0 }],
    ];
    const parked = write(100, 'm1', 'park', 1, { paused: ['a'] });
    expect(checkNeverForgotten(model(...parked, ...round(250))).violations).toHaveLength(1);
    // A round that listed before the park landed knows nothing of it (fencing answers for that).
    expect(checkNeverForgotten(model(...round(50).slice(0, 2), ...parked, ...round(50).slice(2))).ok).toBe(
      true,
    );
    const resumed = write(200, 'm2', 'unpark', 2, { resumed: ['a'] });
    expect(checkNeverForgotten(model(...parked, ...resumed, ...round(250))).ok).toBe(true);
  });

  it('checkNeverForgotten() allows a park a user ended (resumed, or paused through notePaused) before the round', () => {
    const round: [number, string, MemberEvent][] = [
      [250, 'm2', { type: 'list-parked-start' }],
      [251, 'm2', { type: 'list-parked', parked: [], more: false }],
      [300, 'm2', { type: 'resume-round', resumed: 0, stillPausing: 0, complete: true, errors: 0 }],
    ];
    const parked = write(100, 'm1', 'park', 1, { paused: ['a', 'b'] });
    expect(
      checkNeverForgotten(model(...parked, userResume(150, 'a'), userPause(160, 'b', 'parked'), ...round)).ok,
    ).toBe(true);
    expect(checkNeverForgotten(model(...parked, userResume(150, 'a'), ...round)).violations).toHaveLength(1);
  });

  it('checkNeverForgotten() allows a park of a workflow whose last step committed (finished) before the round', () => {
    const round: [number, string, MemberEvent][] = [
      [250, 'm2', { type: 'list-parked-start' }],
      [251, 'm2', { type: 'list-parked', parked: [], more: false }],
      [300, 'm2', { type: 'resume-round', resumed: 0, stillPausing: 0, complete: true, errors: 0 }],
    ];
    const parked = write(100, 'm1', 'park', 1, { pausing: ['a'] });
    // The step in flight when it was parked commits, and it was the last: the workflow finishes.
    const step = (outcome: 'advanced' | 'finished'): [number, string, MemberEvent][] => [
      [50, 'm3', { type: 'step-start', id: 'a', step: 5, claim: 'm3#1' }],
      [150, 'm3', { type: 'commit', id: 'a', step: 5, claim: 'm3#1', outcome }],
    ];
    expect(checkNeverForgotten(model(...step('finished'), ...parked, ...round)).ok).toBe(true);
    expect(checkNeverForgotten(model(...step('advanced'), ...parked, ...round)).violations).toHaveLength(1);
  });

  it('checkFencing() finds a write accepted after a higher fence was raised, and explains a rejection by a raise', () => {
    // A park sent before the next holder raised the fence, and answered after: it may have landed first.
    const behind = model(
      [150, 'm1', { type: 'park-start', token: '5', ids: ['b'], lease: null }],
      ...fence(200, 'm2', 6),
      [400, 'm1', { type: 'park', token: '5', outcomes: { paused: ['b'] } }],
    );
    expect(checkFencing(behind).violations).toEqual([]);
    const after = model(...fence(100, 'm2', 6), ...write(300, 'm1', 'park', 5, { paused: ['a'] }));
    expect(checkFencing(after).violations.map((v) => v.message)).toEqual([
      'the store accepted park by m1 with token 5 after m2 had raised the fence to token 6',
    ]);
    const rejected = model(
      ...fence(100, 'm2', 6),
      [300, 'm1', { type: 'park-start', token: '5', ids: ['a'], lease: null }],
      [301, 'm1', { type: 'park-failed', token: '5', error: stale }],
      ...fence(400, 'm3', 4, stale),
    );
    expect(checkFencing(rejected).ok).toBe(true);
    const unexplained = model(
      [300, 'm1', { type: 'park-start', token: '5', ids: ['a'], lease: null }],
      [301, 'm1', { type: 'park-failed', token: '5', error: stale }],
      ...fence(400, 'm3', 4, stale),
    );
    expect(checkFencing(unexplained).violations).toHaveLength(2);
  });

  it('checkLandings() finds a park that landed in the database after a newer holder raised the fence', () => {
    const aborted = { name: 'AbortError', message: 'the shutdown gave up on it' };
    const history = (...more: [number, string, MemberEvent | HarnessEvent][]): Model =>
      model(
        [0, 'harness', { type: 'phase', phase: 'chaos' }],
        [1000, 'm1', { type: 'park-start', token: '5', ids: ['a'], lease: null }],
        [1500, 'm1', { type: 'park-failed', token: '5', error: aborted }],
        ...more,
      );
    // The database paused `a` at 2.5 s: a second after m1 heard its park fail, and after m2 raised the fence.
    const landed = snapshot(
      [{ id: 'a', status: 'paused' }],
      [{ seq: 1, workflowId: 'a', from: 'running', to: 'paused', at: 2500 }],
    );
    const late = checkLandings(history(...fence(2000, 'm2', 6)), landed);
    expect(late.violations.map((v) => v.message)).toEqual([
      'a running -> paused at 2.500s (database clock), by the park by m1 (token 5, sent at 1.000s, failed (the shutdown gave up on it) at 1.500s), landed after m2 raised the fence under token 6 at 2.001s',
    ]);
    // Before any newer holder looked, it is harmless: a note.
    const harmless = checkLandings(history(), landed);
    expect(harmless.ok).toBe(true);
    expect(harmless.notes).toHaveLength(1);
    // Within the write's span, or the user's own (matched by its status-log row): nothing to say.
    const inFlight = snapshot([], [{ seq: 1, workflowId: 'a', from: 'running', to: 'paused', at: 1200 }]);
    expect(checkLandings(history(...fence(2000, 'm2', 6)), inFlight).ok).toBe(true);
    const byUser = snapshot([], [{ seq: 7, workflowId: 'b', from: 'paused', to: 'running', at: 3000 }]);
    expect(checkLandings(history(userResume(3001, 'b', 7)), byUser).ok).toBe(true);
    // A change nobody made.
    expect(checkLandings(history(), byUser).violations).toHaveLength(1);
  });

  it('checkNothingStranded() finds a workflow left paused with no mark, a user pause still marked, a mark left over', () => {
    const m = model(
      [0, 'harness', { type: 'phase', phase: 'chaos' }],
      ...write(100, 'm1', 'park', 1, { paused: ['a', 'b', 'c', 'd'] }),
      userPause(200, 'b', 'parked'),
      userResume(300, 'c'),
      userPause(400, 'c', 're-pause'),
      userPause(500, 'e', 'running'),
      [900, 'harness', { type: 'phase', phase: 'done' }],
    );
    const end = snapshot([
      { id: 'a', status: 'paused' }, // parked, its mark gone: nobody will ever resume it
      { id: 'b', status: 'paused' }, // paused by a user while parked, still marked: the next start resumes it
      { id: 'c', status: 'paused' }, // resumed and paused again by a user, unmarked: fine
      { id: 'd', status: 'paused' }, // parked and still marked after the final start
      { id: 'e', status: 'paused' }, // paused by a user, unmarked: fine
      { id: 'f', status: 'succeeded' }, // a mark left on a finished workflow
    ]);
    expect(
      checkNothingStranded(m, end, [mark('b'), mark('d'), mark('f', 'other')]).violations.map(
        (v) => v.message,
      ),
    ).toEqual([
      "a: left paused with no park mark and no user's pause (last parked by m1 (token 1) at 0.100s): no start will ever resume it",
      'b: paused by a user at 0.200s (while parked: notePaused), yet still marked (parked by m1, token 1): a later start would resume it',
      "d: still marked (paused, parked by m1, token 1) after the final start's resume (last parked by m1 (token 1) at 0.100s)",
      'f: a park mark (by m1, token 1) left on a workflow now succeeded: the trigger should have dropped it',
    ]);
    const fine = snapshot([
      { id: 'c', status: 'paused' },
      { id: 'e', status: 'paused' },
      { id: 'a', status: 'succeeded' },
    ]);
    expect(checkNothingStranded(m, fine, []).ok).toBe(true);
  });

  it('checkOwnCallers() finds a second shutdown run, another report, start() after stop, an error that escaped', () => {
    const member = (...events: MemberEvent[]): Model =>
      model(
        spawned(0, 'm1', 1),
        [1, 'm1', { type: 'hostile', mode: 'reentrant' }],
        [2, 'm1', { type: 'state', from: 'idle', to: 'starting' }],
        [3, 'm1', { type: 'state', from: 'starting', to: 'running' }],
        [4, 'm1', { type: 'state', from: 'running', to: 'draining' }],
        [5, 'm1', { type: 'state', from: 'draining', to: 'stopped' }],
        [6, 'm1', { type: 'stopped' }],
        ...events.map((e, i): [number, string, MemberEvent] => [10 + i, 'm1', e]),
      );
    expect(
      checkOwnCallers(
        member(
          { type: 'reentrant', where: 'stateChange draining', samePromise: true, sameReport: true },
          { type: 'start-after-stop', error: { name: 'DrainClosedError', message: 'closed' } },
        ),
      ).ok,
    ).toBe(true);
    // A start that failed, then the shutdown: `failed` goes on to `stopped`.
    const failedStart = model(
      spawned(0, 'm1', 1),
      [2, 'm1', { type: 'state', from: 'idle', to: 'starting' }],
      [3, 'm1', { type: 'state', from: 'starting', to: 'failed' }],
      [4, 'm1', { type: 'state', from: 'failed', to: 'stopped' }],
      [5, 'm1', { type: 'stopped' }],
    );
    expect(checkOwnCallers(failedStart).ok).toBe(true);
    expect(
      checkOwnCallers(
        member(
          { type: 'state', from: 'stopped', to: 'draining' },
          { type: 'state', from: 'draining', to: 'stopped' },
          { type: 'stopped' },
          { type: 'reentrant', where: 'intake stopper', samePromise: false, sameReport: false },
          { type: 'start-after-stop', error: null },
          { type: 'uncaught', origin: 'unhandledRejection', error: { name: 'Error', message: 'boom' } },
        ),
      ).violations.map((v) => v.message),
    ).toEqual([
      'm1: its state went from stopped to draining',
      'm1: entered draining twice',
      'm1: entered stopped twice',
      'm1: `stopped` was emitted twice',
      'm1: shutdown() called from intake stopper got another promise and another report',
      'm1: start() after the shutdown resolved, not DrainClosedError',
      'm1: an error escaped to the process (unhandledRejection): Error: boom',
    ]);
  });

  it('checkCrashBounds() finds a crashed member still listed past its bound', () => {
    const listed = (at: number): Model =>
      model(
        spawned(0, 'm1', 1),
        spawned(0, 'm2', 2),
        joined(10, 'm2'),
        [100, 'harness', { type: 'signal', member: 'm2', signal: 'SIGKILL' }],
        [110, 'harness', { type: 'exit', member: 'm2', code: null, signal: 'SIGKILL' }],
        [at, 'm1', { type: 'members-start' }],
        [at + 1, 'm1', { type: 'members', members: [{ memberId: 'm2', expiresInMs: 100 }] }],
      );
    expect(checkCrashBounds(listed(1000), 'redis').ok).toBe(true);
    expect(checkCrashBounds(listed(3000), 'redis').violations).toHaveLength(1);
  });

  it('checkAttempts() allows a step cut off by a crash, not one left open by a graceful exit', () => {
    const attempt = (signal: 'SIGKILL' | 'SIGTERM', code: number | null): Model =>
      model(
        spawned(0, 'm1', 1),
        [10, 'm1', { type: 'step-start', id: 'a', step: 0, claim: 'm1#1' }],
        [20, 'harness', { type: 'signal', member: 'm1', signal }],
        [30, 'harness', { type: 'exit', member: 'm1', code, signal: code === null ? signal : null }],
      );
    expect(checkAttempts(attempt('SIGKILL', null)).ok).toBe(true);
    expect(checkAttempts(attempt('SIGTERM', 0)).violations).toHaveLength(1);
  });

  it('checkCrashRecovered() finds a workflow left stranded after the start that followed a crash stop, and one it did not recover', () => {
    const crash = (settled: { id: string; owner: string }[], handedBack: string[]): Model =>
      model(
        spawned(0, 'm1', 1),
        spawned(0, 'm2', 2),
        [100, 'harness', { type: 'crash-stop', kind: 'crash-last', killed: ['m1'], stranded: ['a', 'b'] }],
        ...recovered(200, 'm2', 4, { pausing: handedBack, skipped: ['c'] }),
        [
          300,
          'harness',
          { type: 'crash-settled', kind: 'crash-last', members: ['m2'], stranded: settled, leftAfterMs: 50 },
        ],
      );
    expect(checkCrashRecovered(crash([], ['a', 'b'])).ok).toBe(true);
    expect(
      checkCrashRecovered(crash([{ id: 'b', owner: 'm1#7' }], ['a'])).violations.map((v) => v.message),
    ).toEqual([
      'b still running, held by m1#7 (not alive), once the start after the crash-last at 0.100s had settled',
      'b, held by m1 when the crash-last at 0.100s killed them, was not recovered by the next start',
    ]);
    // The members started after it never were all ready: the run says so.
    const unsettled = model([
      100,
      'harness',
      { type: 'crash-stop', kind: 'crash-all', killed: ['m1'], stranded: [] },
    ]);
    expect(checkCrashRecovered(unsettled).violations).toHaveLength(1);
  });

  it('checkPeerCrashRecovered() finds what a crash-peer left held, one not recovered, one recovered that the dead did not hold, no report, no eviction', () => {
    const peerCrash = (o: {
      settled: string[];
      handedBack: string[];
      report?: boolean;
      /** When the survivor's report arrives (default 210, before the harness saw it settled at 300). */
      reportAt?: number;
      evict?: boolean;
    }): Model =>
      model(
        spawned(0, 'm1', 1),
        spawned(0, 'm2', 2),
        [100, 'harness', { type: 'crash-peer', killed: 'm1', survivors: ['m2'], stranded: ['a', 'b'] }],
        ...(o.evict === false
          ? []
          : [
              [
                150,
                'm2',
                { type: 'evict', token: '4', members: [{ memberId: 'm1', incarnation: 'i1' }] },
              ] as [number, string, MemberEvent],
            ]),
        ...recovered(200, 'm2', 4, { pausing: o.handedBack }),
        ...(o.report === false
          ? []
          : [
              [
                o.reportAt ?? 210,
                'm2',
                {
                  type: 'recovery',
                  policy: 'resume',
                  reason: 'peer-crash',
                  generation: 3,
                  deadMembers: ['m1'],
                  found: 2,
                  recovered: o.handedBack.length,
                  failed: 0,
                  skipped: 0,
                  complete: true,
                  errors: [],
                },
              ] as [number, string, MemberEvent],
            ]),
        [
          300,
          'harness',
          { type: 'crash-peer-settled', killed: 'm1', members: ['m2'], stranded: o.settled, afterMs: 200 },
        ],
      );
    expect(checkPeerCrashRecovered(peerCrash({ settled: [], handedBack: ['a', 'b'] })).ok).toBe(true);
    expect(
      checkPeerCrashRecovered(peerCrash({ settled: ['b'], handedBack: ['a', 'c'] })).violations.map(
        (v) => v.message,
      ),
    ).toEqual([
      'b still running, held by m1 (killed at 0.100s), 0.2 s after the kill: no peer check recovered it',
      'b, held by m1 when it was killed at 0.100s, was not recovered by a survivor',
      'c, not held by m1, was recovered by m2 (token 4, generation 3) at 0.200s after its crash-peer at 0.100s',
    ]);
    expect(
      checkPeerCrashRecovered(
        peerCrash({ settled: [], handedBack: ['a', 'b'], report: false, evict: false }),
      ).violations.map((v) => v.message),
    ).toEqual([
      'no survivor reported the peer-crash of m1 (killed at 0.100s)',
      'm1 (killed at 0.100s) was never evicted',
    ]);
    // The survivor's report arrives after the harness saw nothing held any more (it is sent once the
    // recovery's writes are done, and the harness may read the table first): still the survivor's.
    expect(
      checkPeerCrashRecovered(peerCrash({ settled: [], handedBack: ['a', 'b'], reportAt: 400 })).ok,
    ).toBe(true);
    // The run never recorded how it settled: said so.
    const unsettled = model([
      100,
      'harness',
      { type: 'crash-peer', killed: 'm1', survivors: ['m2'], stranded: [] },
    ]);
    expect(checkPeerCrashRecovered(unsettled).violations).toHaveLength(1);
  });

  it('checkRecoveredOnce() finds a workflow recovered twice with no resume between', () => {
    const twice = model(
      [0, 'harness', { type: 'phase', phase: 'chaos' }],
      ...recovered(100, 'm1', 1, { paused: ['a', 'b'] }),
      ...write(200, 'm1', 'unpark', 2, { resumed: ['b'] }),
      ...recovered(300, 'm2', 3, { pausing: ['a', 'b'] }),
    );
    expect(checkRecoveredOnce(twice).violations.map((v) => v.message)).toEqual([
      'a recovered twice, with no resume between: by m1 (token 1, generation 3) at 0.100s and by m2 (token 3, generation 3) at 0.300s',
    ]);
    const userResumed = model(
      ...recovered(100, 'm1', 1, { paused: ['a'] }),
      userResume(200, 'a'),
      ...recovered(300, 'm2', 3, { pausing: ['a'], skipped: ['b'] }, 4),
    );
    expect(checkRecoveredOnce(userResumed).ok).toBe(true);
  });

  it('checkRecoveryScope() finds a recovery of a workflow a user paused, or one a live member drives', () => {
    const m = (frozen: boolean): Model =>
      model(
        spawned(0, 'm1', 1),
        spawned(0, 'm2', 2),
        joined(10, 'm2'),
        userPause(50, 'a', 'running'),
        ...((frozen
          ? [
              [60, 'harness', { type: 'signal', member: 'm2', signal: 'SIGSTOP' }],
              [5000, 'harness', { type: 'signal', member: 'm2', signal: 'SIGCONT' }],
            ]
          : []) as [number, string, HarnessEvent][]),
        [90, 'm2', { type: 'step-start', id: 'b', step: 2, claim: 'm2#5' }],
        ...recovered(100, 'm1', 1, { paused: ['a', 'b'], skipped: ['c'] }),
      );
    expect(checkRecoveryScope(m(false)).violations.map((v) => v.message)).toEqual([
      'a was paused by a user at 0.050s, then recovered (paused) by m1 (token 1, generation 3) at 0.100s',
      'b recovered (paused) by m1 (token 1, generation 3) at 0.100s while m2, alive, ran its step 3 (since 0.090s)',
    ]);
    // A frozen member may be dead for all the group knows: recovering what it drove is allowed.
    expect(checkRecoveryScope(m(true)).violations).toHaveLength(1);
  });

  it('checkClusterStops() finds a graceful stop of every member where nobody parked', () => {
    const stop = (handOff: string): Model =>
      model(
        spawned(0, 'm1', 1),
        [
          100,
          'm1',
          {
            type: 'report',
            outcome: 'clean',
            handOff,
            durationMs: 10,
            budgetMs: 4000,
            parked: 0,
            token: '1',
            inFlightAtStart: 0,
            aborted: 0,
            stragglers: 0,
            errors: [],
          },
        ],
        [200, 'harness', { type: 'cluster-stopped', members: ['m1'], running: ['a'] }],
      );
    expect(checkClusterStops(stop('peers-remain')).violations).toHaveLength(2);
    expect(checkClusterStops(stop('lock-timeout')).ok).toBe(true);
  });
});

describe('the fault list', () => {
  it('is documented: docs/reliability.md describes every fault, and no other', () => {
    const doc = readFileSync(fileURLToPath(new URL('../docs/reliability.md', import.meta.url)), 'utf8');
    const table = doc.slice(doc.indexOf('## The faults'), doc.indexOf('## What is checked'));
    const documented = [...table.matchAll(/^\| `([a-z-]+)`/gm)].map((m) => m[1]);
    expect(documented).toEqual(FAULT_KINDS);
  });

  it('gives every backend its faults: the new ones on all three, the network ones where there is a network', () => {
    for (const backend of ['sqlite', 'redis', 'postgres'] as const) {
      const kinds = faultsFor(backend);
      for (const kind of [
        'host-lock-at-park',
        'host-lock-at-resume',
        'user-resume',
        'user-pause-parked',
        'hostile-listeners',
        'crash-last',
        'crash-all',
        'crash-peer',
      ] as const) {
        expect(kinds).toContain(kind);
      }
      expect(kinds.includes('partition')).toBe(backend !== 'sqlite');
    }
    expect(FAULTS['cluster-stop'].weight).toBe(0);
    expect(FAULTS['crash-last'].weight).toBe(0);
    expect(FAULTS['crash-all'].weight).toBe(0);
    expect(FAULTS['crash-peer'].weight).toBe(0);
  });
});

interface ChaosJson {
  readonly ok: boolean;
  readonly faultCount: number;
  readonly faults: Readonly<Record<string, number>>;
  readonly checks: readonly {
    readonly name: string;
    readonly ok: boolean;
    readonly violations?: readonly { readonly message: string }[];
  }[];
  readonly created: { readonly pgSchema: string | null; readonly redisKeyPrefix: string | null };
  readonly pids: readonly number[];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs `npx tsx chaos/main.ts ...` as CI does. */
async function chaos(
  args: readonly string[],
): Promise<{ code: number | null; stdout: string; json: ChaosJson }> {
  const file = join(folder, `${args.join('-').replace(/[^a-z0-9-]/gi, '')}.json`);
  const child = spawn('npx', ['tsx', main, ...args, '--json', file], {
    cwd: root,
    env: { ...process.env, GD_REDIS_URL: REDIS_URL, GD_POSTGRES_URL: POSTGRES_URL },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, json: JSON.parse(readFileSync(file, 'utf8')) as ChaosJson };
}

describe('npm run chaos', () => {
  // Seeds whose schedules draw both host locks and a user fault early (the traps spring on the members
  // that start after the first cluster stop, if not before).
  const runs = [
    ['sqlite', 6],
    ['redis', 4],
    ['postgres', 11],
  ] as const;
  for (const [backend, seed] of runs) {
    it(`--backend ${backend} --seed ${seed}: every check holds, faults were injected, nothing is left behind`, async () => {
      const { code, stdout, json } = await chaos([
        '--backend',
        backend,
        '--members',
        '3',
        '--seconds',
        '15',
        '--seed',
        String(seed),
      ]);
      expect(stdout).toMatch(/checker: \d+\/\d+ checks held, [1-9]\d* faults injected/);
      // A failed check is named with its first violations in the message, so that a CI summary says why.
      const failed = json.checks.filter((c) => !c.ok);
      const why = failed.map(
        (c) =>
          `${c.name}: ${(c.violations ?? [])
            .slice(0, 3)
            .map((v) => v.message)
            .join('; ')}`,
      );
      expect(
        failed.map((c) => c.name),
        why.join(' | '),
      ).toEqual([]);
      expect(code, stdout.slice(-3000)).toBe(0);
      expect(json.ok).toBe(true);
      expect(json.faultCount).toBeGreaterThan(0);
      // The calm phase begins with a crash stop: every run recovers from one.
      expect((json.faults['crash-last'] ?? 0) + (json.faults['crash-all'] ?? 0)).toBeGreaterThan(0);
      // And with a crash of one member while the others run: their peer check recovers its workflows.
      expect(json.faults['crash-peer']).toBe(1);
      expect(json.checks.map((c) => c.name)).toContain(
        'after a crash-peer, the survivors recover what the dead member drove, and only that',
      );
      expect(json.pids.length).toBeGreaterThanOrEqual(3);
      expect(json.pids.filter(alive)).toEqual([]);
      if (json.created.pgSchema !== null) {
        const client = new pg.Client({ connectionString: POSTGRES_URL });
        await client.connect();
        const { rows } = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [
          json.created.pgSchema,
        ]);
        await client.end();
        expect(rows).toEqual([]);
      }
      if (json.created.redisKeyPrefix !== null) {
        const redis = new Redis(REDIS_URL);
        const keys = await redis.keys(`{${json.created.redisKeyPrefix}*`);
        redis.disconnect();
        expect(keys).toEqual([]);
      }
    }, 120_000);
  }

  it('Ctrl-C ends every member, cleans up, and exits with 130', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', main, '--backend', 'sqlite', '--seconds', '60', '--seed', '4'],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    child.stdout.setEncoding('utf8');
    await new Promise<void>((resolve) =>
      child.stdout.on('data', (chunk: string) => {
        stdout += chunk;
        if (stdout.includes('chaos for')) resolve();
      }),
    );
    const members = (
      await new Promise<string>((resolve) => {
        const ps = spawn('ps', ['-o', 'pid=', '--ppid', String(child.pid)]);
        let out = '';
        ps.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
        ps.on('close', () => resolve(out));
      })
    )
      .split('\n')
      .map((s) => Number(s.trim()))
      .filter((pid) => pid > 0);
    expect(members.length).toBeGreaterThanOrEqual(3);
    child.kill('SIGINT');
    const [code] = (await once(child, 'close')) as [number | null];
    expect(code).toBe(130);
    expect(members.filter(alive)).toEqual([]);
  }, 60_000);
});
