/**
 * The chaos harness (chaos/): its checker finds what it must on small histories written by hand, and a
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
import { checkCrashBounds, checkFencing, checkLeaseExclusion, checkTokens } from '../chaos/check-locks.js';
import {
  checkClusterStops,
  checkNeverForgotten,
  checkNoParkOverPeers,
  checkParkResumeAlternate,
} from '../chaos/check-protocol.js';
import { checkAttempts } from '../chaos/check-steps.js';
import type { HarnessEvent, HistoryEntry, MemberEvent } from '../chaos/history.js';
import { buildModel, type Model } from '../chaos/model.js';
import { TIMINGS } from '../chaos/run.js';
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

  it('checkNoParkOverPeers() finds a park while a peer was alive, not one over a frozen peer', () => {
    const peer = (freeze: boolean): Model =>
      model(
        spawned(0, 'm1', 1),
        spawned(0, 'm2', 2),
        joined(10, 'm1'),
        joined(20, 'm2'),
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
  });

  it('checkParkResumeAlternate() finds a resume without a park, a double park, a user-paused one resumed', () => {
    const m = model(
      ...write(100, 'm1', 'unpark', 1, { resumed: ['a'] }),
      ...write(200, 'm1', 'park', 2, { paused: ['b'] }),
      ...write(300, 'm2', 'park', 3, { pausing: ['b'] }),
      [400, 'harness', { type: 'user-pause', id: 'c', step: 1, claim: null }],
      ...write(500, 'm2', 'unpark', 4, { resumed: ['c'] }),
    );
    expect(checkParkResumeAlternate(m).violations.map((v) => v.message)).toEqual([
      'a resumed by m1 (token 1) though it was not parked',
      'b parked twice: by m1 (token 2) and by m2 (token 3) with no resume between',
      'c resumed by m2 (token 4) though it was not parked',
      'c was paused by a user and then resumed by m2',
    ]);
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

interface ChaosJson {
  readonly ok: boolean;
  readonly faultCount: number;
  readonly checks: readonly { readonly name: string; readonly ok: boolean }[];
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
  const runs = [
    ['sqlite', 1],
    ['redis', 2],
    ['postgres', 3],
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
      expect(json.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual([]);
      expect(code, stdout.slice(-3000)).toBe(0);
      expect(json.ok).toBe(true);
      expect(json.faultCount).toBeGreaterThan(0);
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
