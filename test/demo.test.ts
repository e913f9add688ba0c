import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { renderTimeline } from '../examples/demo/timeline.js';
import { parseFlags, integer, toggle, UsageError } from '../harness/flags.js';
import { checkAllFinished, checkStepsExactlyOnce, checkUserPausedUntouched } from '../harness/host-checks.js';
import type { HostSnapshot } from '../harness/host-db.js';
import { isBusy } from '../harness/sqlite.js';
import { POSTGRES_URL, REDIS_URL } from './support/env.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const main = fileURLToPath(new URL('../examples/demo/main.ts', import.meta.url));
const folder = mkdtempSync(join(tmpdir(), 'graceful-drain-demo-test-'));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

interface DemoRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the demo as `npm run demo` would, in a child process. */
async function runDemo(args: readonly string[]): Promise<DemoRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', main, ...args], {
    cwd: root,
    env: { ...process.env, GD_REDIS_URL: REDIS_URL, GD_POSTGRES_URL: POSTGRES_URL },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

/** What `--json` writes, as far as these tests read it. */
interface DemoJson {
  readonly ok: boolean;
  readonly run: {
    readonly db: string | null;
    readonly pgSchema: string | null;
    readonly redisKeyPrefix: string | null;
  };
  readonly workers: readonly {
    readonly memberId: string;
    readonly report:
      { readonly handOff: string; readonly parked: number; readonly outcome: string } | undefined;
    readonly resumed: { readonly resumed: number } | undefined;
    readonly exit: { readonly code: number | null; readonly signal: string | null } | undefined;
    readonly recovery:
      | {
          readonly reason: string;
          readonly policy: string;
          readonly deadMembers: readonly string[];
          readonly found: number;
          readonly recovered: number;
          readonly complete: boolean;
        }
      | undefined;
    readonly recovered: Readonly<Record<string, readonly string[]>>;
    readonly recoveries?: readonly {
      readonly reason: string;
      readonly deadMembers: readonly string[];
      readonly recovered: number;
      readonly complete: boolean;
    }[];
  }[];
  readonly crash?: { readonly killed: string | null; readonly stranded: readonly string[] };
  readonly crashPeer?: { readonly killed: string | null; readonly stranded: readonly string[] };
  readonly checks: readonly { readonly name: string; readonly ok: boolean }[];
}

const small = ['--workers', '2', '--workflows', '6', '--steps', '3', '--user-paused', '1'];

/** Runs a small demo and checks what every backend must show; returns the JSON summary. */
async function expectPassingRun(name: string, extra: readonly string[]): Promise<DemoJson> {
  const json = join(folder, `${name}.json`);
  const run = await runDemo([...small, '--json', json, ...extra]);
  expect(run.stderr).toBe('');
  expect(run.code, run.stdout).toBe(0);
  expect(run.stdout).toContain('All checks passed.');
  const summary = JSON.parse(readFileSync(json, 'utf8')) as DemoJson;
  expect(summary.ok).toBe(true);
  expect(summary.checks.length).toBeGreaterThanOrEqual(6);
  expect(summary.checks.filter((c) => !c.ok)).toEqual([]);
  const [first, last, ...restarted] = summary.workers;
  // The rolling stop: the first worker leaves its work to its peer; the last one parks.
  expect(first?.memberId).toBe('worker-1');
  expect(first?.report?.handOff).toBe('peers-remain');
  expect(first?.report?.parked).toBe(0);
  expect(last?.memberId).toBe('worker-2');
  expect(last?.report?.handOff).toBe('parked');
  expect(last?.report?.parked).toBeGreaterThan(0);
  // The restart resumes exactly what was parked.
  const resumed = restarted.reduce((n, w) => n + (w.resumed?.resumed ?? 0), 0);
  expect(resumed).toBe(last?.report?.parked);
  for (const w of summary.workers) expect(w.report?.outcome).toBe('clean');
  return summary;
}

/** A minimal well-formedness check: every tag closed in order, one root element. */
function expectWellFormedXml(xml: string): void {
  const stack: string[] = [];
  let roots = 0;
  for (const match of xml.matchAll(/<(\/?)([a-zA-Z][\w:-]*)[^>]*?(\/?)>/g)) {
    const [, closing, name, selfClosing] = match as unknown as [string, string, string, string];
    if (closing === '/') expect(stack.pop()).toBe(name);
    else if (selfClosing !== '/') {
      if (stack.length === 0) roots++;
      stack.push(name);
    } else if (stack.length === 0) roots++;
  }
  expect(stack).toEqual([]);
  expect(roots).toBe(1);
}

describe('npm run demo (examples/demo/main.ts)', () => {
  it('runs a small cluster on SQLite: every check passes and the last worker parks', async () => {
    const summary = await expectPassingRun('sqlite', []);
    expect(summary.run.db).not.toBeNull();
    // The temporary folder of the SQLite file is removed at the end.
    expect(existsSync(summary.run.db as string)).toBe(false);
  });

  it('--timeline writes a standalone SVG with a lane per worker; --db keeps the SQLite file', async () => {
    const svg = join(folder, 'timeline.svg');
    const db = join(folder, 'kept.db');
    await expectPassingRun('timeline', ['--timeline', svg, '--db', db]);
    const text = readFileSync(svg, 'utf8');
    expect(text.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(text.trimEnd().endsWith('</svg>')).toBe(true);
    expectWellFormedXml(text);
    expect(text).toMatch(/>worker-1<\/text>/);
    expect(text).toMatch(/>worker-2<\/text>/);
    for (const legend of [
      'running',
      'draining',
      'parked (marked by shutdown)',
      'finished',
      'time since start (s)',
    ]) {
      expect(text).toContain(`>${legend}</text>`);
    }
    expect(existsSync(db)).toBe(true);
  });

  it('runs on Redis (--backend redis) and removes its keys at the end', async () => {
    const summary = await expectPassingRun('redis', ['--backend', 'redis']);
    const prefix = summary.run.redisKeyPrefix as string;
    expect(prefix).toMatch(/^gd-demo-/);
    const redis = new Redis(REDIS_URL);
    try {
      const [, keys] = await redis.scan('0', 'MATCH', `{${prefix}*`, 'COUNT', 1000);
      expect(keys).toEqual([]);
    } finally {
      redis.disconnect();
    }
  });

  it('runs on PostgreSQL (--backend postgres) and drops its schema at the end', async () => {
    const summary = await expectPassingRun('postgres', ['--backend', 'postgres']);
    const schema = summary.run.pgSchema as string;
    expect(schema).toMatch(/^gd_demo_/);
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    await client.connect();
    try {
      const { rows } = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
      expect(rows).toEqual([]);
    } finally {
      await client.end();
    }
  });

  it('--crash: the last worker is killed mid-run, the next start recovers what it held, every check passes', async () => {
    const json = join(folder, 'crash.json');
    const svg = join(folder, 'crash.svg');
    const run = await runDemo([
      ...['--crash', '--workers', '2', '--workflows', '10', '--steps', '4', '--user-paused', '1'],
      ...['--step-ms', '200', '--json', json, '--timeline', svg],
    ]);
    expect(run.stderr).toBe('');
    expect(run.code, run.stdout).toBe(0);
    expect(run.stdout).toContain('All checks passed.');
    expect(run.stdout).toMatch(/SIGKILL -> worker-2 \(the last one running\)/);
    const summary = JSON.parse(readFileSync(json, 'utf8')) as DemoJson;
    expect(summary.checks.filter((c) => !c.ok)).toEqual([]);
    expect(summary.checks.map((c) => c.name)).toEqual(
      expect.arrayContaining([
        'the crash strands what the dead worker held',
        'the next start recovered them before intake opened',
        'no workflow recovered twice',
        'workflows paused by a user untouched',
      ]),
    );
    const stranded = summary.crash?.stranded ?? [];
    expect(summary.crash?.killed).toBe('worker-2');
    expect(stranded.length).toBeGreaterThan(0);
    const killed = summary.workers.find((w) => w.memberId === 'worker-2');
    expect(killed?.exit?.signal).toBe('SIGKILL');
    expect(killed?.report).toBeUndefined();
    // One start of the restart recovered, before intake opened: the stranded among what it handed back.
    const recoverers = summary.workers.filter((w) => (w.recovery?.recovered ?? 0) > 0);
    expect(recoverers).toHaveLength(1);
    const r = recoverers[0]?.recovery;
    expect(r).toMatchObject({ reason: 'crash', policy: 'resume', deadMembers: ['worker-2'], complete: true });
    const handedBack = [
      ...(recoverers[0]?.recovered.paused ?? []),
      ...(recoverers[0]?.recovered.pausing ?? []),
    ];
    expect(handedBack).toHaveLength(r?.recovered ?? -1);
    expect(handedBack).toEqual(expect.arrayContaining([...stranded]));
    const resumed = summary.workers.reduce((n, w) => n + (w.resumed?.resumed ?? 0), 0);
    expect(resumed).toBe(r?.recovered);
    const text = readFileSync(svg, 'utf8');
    expectWellFormedXml(text);
    expect(text).toContain('>held by a dead worker</text>');
    expect(text).toContain(`>recovered ${r?.recovered}</text>`);
  });

  it('--crash --recovery report: the next start only reports, the stranded workflows stay held until the cluster stop parks them', async () => {
    const json = join(folder, 'crash-report.json');
    const run = await runDemo([
      ...['--crash', '--recovery', 'report', '--workers', '2', '--workflows', '10', '--steps', '4'],
      ...['--user-paused', '1', '--step-ms', '200', '--json', json],
    ]);
    expect(run.code, run.stdout).toBe(0);
    const summary = JSON.parse(readFileSync(json, 'utf8')) as DemoJson;
    expect(summary.checks.filter((c) => !c.ok)).toEqual([]);
    expect(summary.checks.map((c) => c.name)).toContain('without recovery the crash strands them');
    expect(summary.crash?.stranded.length).toBeGreaterThan(0);
    const reporter = summary.workers.find((w) => w.recovery?.reason === 'crash');
    expect(reporter?.recovery).toMatchObject({ policy: 'report', recovered: 0 });
    expect(reporter?.recovery?.found).toBeGreaterThanOrEqual(summary.crash?.stranded.length ?? Infinity);
    // Only the last member's park at the cluster stop took them.
    const parked = summary.workers.reduce((n, w) => n + (w.report?.parked ?? 0), 0);
    expect(parked).toBe(summary.crash?.stranded.length);
  });

  it('--crash-peer: one worker is killed while the other runs on, whose peer check recovers what it held, every check passes', async () => {
    const json = join(folder, 'crash-peer.json');
    const svg = join(folder, 'crash-peer.svg');
    const run = await runDemo([
      ...['--crash-peer', '--workers', '2', '--workflows', '10', '--steps', '4', '--user-paused', '1'],
      ...['--step-ms', '200', '--json', json, '--timeline', svg],
    ]);
    expect(run.stderr).toBe('');
    expect(run.code, run.stdout).toBe(0);
    expect(run.stdout).toContain('All checks passed.');
    expect(run.stdout).toMatch(/SIGKILL -> worker-1 while worker-2 run on/);
    const summary = JSON.parse(readFileSync(json, 'utf8')) as DemoJson;
    expect(summary.checks.filter((c) => !c.ok)).toEqual([]);
    expect(summary.checks.map((c) => c.name)).toEqual(
      expect.arrayContaining([
        "a live worker recovered the dead one's workflows while the group ran",
        'no workflow recovered twice',
        "the dead incarnation's write is rejected",
        'no step lost or run twice',
        'workflows paused by a user untouched',
      ]),
    );
    const stranded = summary.crashPeer?.stranded ?? [];
    expect(summary.crashPeer?.killed).toBe('worker-1');
    expect(stranded.length).toBeGreaterThan(0);
    const killed = summary.workers.find((w) => w.memberId === 'worker-1');
    expect(killed?.exit?.signal).toBe('SIGKILL');
    expect(killed?.report).toBeUndefined();
    // The survivor recovered exactly what the dead worker held, by its peer check: nobody restarted.
    expect(summary.workers.map((w) => w.memberId)).toEqual(['worker-1', 'worker-2']);
    const survivor = summary.workers.find((w) => w.memberId === 'worker-2');
    const peerCrash = (survivor?.recoveries ?? []).filter((r) => r.reason === 'peer-crash');
    expect(peerCrash).toHaveLength(1);
    expect(peerCrash[0]).toMatchObject({ deadMembers: ['worker-1'], complete: true });
    const handedBack = [...(survivor?.recovered.paused ?? []), ...(survivor?.recovered.pausing ?? [])];
    expect(handedBack.sort()).toEqual([...stranded].sort());
    expect(peerCrash[0]?.recovered).toBe(stranded.length);
    expect(survivor?.report).toMatchObject({ outcome: 'clean', handOff: 'parked' });
    const text = readFileSync(svg, 'utf8');
    expectWellFormedXml(text);
    expect(text).toContain('>held by a dead worker</text>');
    expect(text).toContain(`>peer check: recovered ${stranded.length}</text>`);
  });

  it('rejects a bad flag with an error naming the flag and the value, exit code 2', async () => {
    const zero = await runDemo(['--workers', '0']);
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain('--workers expects a whole number from 1 to 16, got "0"');
    const backend = await runDemo(['--backend', 'mysql']);
    expect(backend.code).toBe(2);
    expect(backend.stderr).toContain('--backend expects one of sqlite, redis, postgres, got "mysql"');
    expect(backend.stdout).toBe('');
    const report = await runDemo(['--recovery', 'report']);
    expect(report.code).toBe(2);
    expect(report.stderr).toContain('--recovery report needs --crash');
    const alone = await runDemo(['--crash-peer', '--workers', '1']);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain('--crash-peer expects --workers of 2 or more');
    expect(alone.stderr).toContain('got "1"');
  });
});

describe('host checks (harness/host-checks.ts)', () => {
  const base: HostSnapshot = {
    workflows: [
      { id: 'wf-1', status: 'succeeded', step: 2, steps: 2, owner: null },
      { id: 'wf-2', status: 'paused', step: 1, steps: 2, owner: null },
    ],
    stepLog: [
      { seq: 1, workflowId: 'wf-1', step: 0, worker: 'w', claim: 'c1', startedAt: 0, finishedAt: 1 },
      { seq: 2, workflowId: 'wf-2', step: 0, worker: 'w', claim: 'c2', startedAt: 0, finishedAt: 1 },
      { seq: 3, workflowId: 'wf-1', step: 1, worker: 'w', claim: 'c3', startedAt: 1, finishedAt: 2 },
    ],
    statusLog: [
      { seq: 1, workflowId: 'wf-2', from: 'running', to: 'paused', step: 1, at: 5 },
      { seq: 2, workflowId: 'wf-1', from: 'running', to: 'succeeded', step: 2, at: 6 },
    ],
    userPauses: [{ workflowId: 'wf-2', step: 1, statusSeq: 1, pausedAt: 5, claim: null }],
  };

  it('pass on a consistent run', () => {
    expect(checkStepsExactlyOnce(base).ok).toBe(true);
    expect(checkAllFinished(base).ok).toBe(true);
    expect(checkUserPausedUntouched(base, new Set()).ok).toBe(true);
  });

  it('checkStepsExactlyOnce() finds a step run twice and a step lost', () => {
    const twice = checkStepsExactlyOnce({
      ...base,
      stepLog: [...base.stepLog, { ...base.stepLog[0]!, seq: 4 }],
    });
    expect(twice.ok).toBe(false);
    expect(twice.problems).toContain('wf-1: step 1 recorded 2 times');
    const lost = checkStepsExactlyOnce({ ...base, stepLog: base.stepLog.filter((s) => s.seq !== 3) });
    expect(lost.problems).toContain('wf-1: step 2 lost (never recorded)');
  });

  it('checkAllFinished() finds an unfinished workflow and a claim left behind', () => {
    const result = checkAllFinished({
      ...base,
      workflows: [{ id: 'wf-1', status: 'running', step: 1, steps: 2, owner: 'w#7' }, base.workflows[1]!],
    });
    expect(result.problems).toEqual([
      'wf-1: still claimed by w#7',
      'wf-1: running at step 1 of 2, not succeeded',
    ]);
  });

  it('checkUserPausedUntouched() finds a resume after the pause, a later step, and a park mark', () => {
    const resumed = checkUserPausedUntouched(
      {
        ...base,
        workflows: [base.workflows[0]!, { id: 'wf-2', status: 'running', step: 2, steps: 2, owner: null }],
        stepLog: [
          ...base.stepLog,
          { seq: 4, workflowId: 'wf-2', step: 1, worker: 'w', claim: 'c4', startedAt: 7, finishedAt: 8 },
        ],
        statusLog: [
          ...base.statusLog,
          { seq: 3, workflowId: 'wf-2', from: 'paused', to: 'running', step: 1, at: 7 },
        ],
      },
      new Set(['wf-2']),
    );
    expect(resumed.problems).toEqual([
      'wf-2: running, not paused',
      'wf-2: 2 steps recorded, 1 before the pause',
      'wf-2: at step 2, paused at step 1',
      'wf-2: paused -> running after the user paused it',
      'wf-2: was marked parked-by-shutdown',
    ]);
  });

  it('checkUserPausedUntouched() accepts the step in flight at the pause, and no other', () => {
    const inFlight: HostSnapshot = {
      ...base,
      workflows: [base.workflows[0]!, { id: 'wf-2', status: 'paused', step: 2, steps: 3, owner: null }],
      stepLog: [
        ...base.stepLog,
        { seq: 4, workflowId: 'wf-2', step: 1, worker: 'w', claim: 'c4', startedAt: 4, finishedAt: 8 },
      ],
      statusLog: [
        { seq: 1, workflowId: 'wf-2', from: 'running', to: 'pausing', step: 1, at: 5 },
        { seq: 2, workflowId: 'wf-2', from: 'pausing', to: 'paused', step: 2, at: 8 },
      ],
      userPauses: [{ workflowId: 'wf-2', step: 1, statusSeq: 1, pausedAt: 5, claim: 'c4' }],
    };
    expect(checkUserPausedUntouched(inFlight, new Set()).problems).toEqual([]);
    const another = checkUserPausedUntouched(
      {
        ...inFlight,
        workflows: [base.workflows[0]!, { id: 'wf-2', status: 'paused', step: 3, steps: 3, owner: null }],
        stepLog: [
          ...inFlight.stepLog,
          { seq: 5, workflowId: 'wf-2', step: 2, worker: 'w', claim: 'c5', startedAt: 9, finishedAt: 10 },
        ],
      },
      new Set(),
    );
    expect(another.problems).toEqual([
      'wf-2: 2 steps recorded, 1 before the pause',
      'wf-2: at step 3, paused at step 1 (+1 in flight)',
    ]);
  });
});

describe('harness and demo helpers', () => {
  it('parseFlags() names the flag and the value in its errors', () => {
    const specs = { workers: integer(1, 16, 3, 'workers') };
    expect(parseFlags([], specs)).toEqual({ workers: 3 });
    expect(parseFlags(['--workers=5'], specs)).toEqual({ workers: 5 });
    expect(() => parseFlags(['--workers', '2.5'], specs)).toThrow(
      new UsageError('--workers expects a whole number from 1 to 16, got "2.5"'),
    );
    expect(() => parseFlags(['--worker', '2'], specs)).toThrow(
      /Unknown option --worker \(did you mean --workers\?\)/,
    );
  });

  it('parseFlags() reads switches, short aliases and the environment, and refuses what parseArgs lets through', () => {
    const specs = {
      workers: { ...integer(1, 16, 3, 'workers'), env: 'GD_TEST_WORKERS' },
      help: toggle('help', 'h'),
    };
    expect(parseFlags(['-h'], specs, { GD_TEST_WORKERS: '7' })).toEqual({ workers: 7, help: true });
    expect(parseFlags(['--workers', '2'], specs, { GD_TEST_WORKERS: '7' })).toEqual({
      workers: 2,
      help: false,
    });
    expect(() => parseFlags([], specs, { GD_TEST_WORKERS: 'x' })).toThrow(
      'GD_TEST_WORKERS (environment) expects a whole number from 1 to 16, got "x"',
    );
    expect(() => parseFlags(['--workers'], specs)).toThrow('--workers needs a value (N)');
    expect(() => parseFlags(['--workers', '--help'], specs)).toThrow('--workers needs a value (N)');
    expect(() => parseFlags(['--workers=2', '--workers', '3'], specs)).toThrow('--workers is given twice');
    expect(() => parseFlags(['--help=yes'], specs)).toThrow('--help takes no value, got "yes"');
    expect(() => parseFlags(['--workers', '2', 'extra'], specs)).toThrow(
      'Unexpected argument "extra": every option is a --flag',
    );
  });

  it("isBusy() knows a busy or locked database from either SQLite driver's errors", () => {
    const nodeSqlite = (errcode: number) =>
      Object.assign(new Error('x'), { code: 'ERR_SQLITE_ERROR', errcode });
    // SQLITE_BUSY, SQLITE_LOCKED, and extended codes of both (BUSY_SNAPSHOT, LOCKED_SHAREDCACHE).
    for (const errcode of [5, 6, 517, 262]) expect(isBusy(nodeSqlite(errcode))).toBe(true);
    for (const errcode of [1, 19, 2067]) expect(isBusy(nodeSqlite(errcode))).toBe(false);
    const better = (code: string) => Object.assign(new Error('x'), { code });
    expect(isBusy(better('SQLITE_BUSY'))).toBe(true);
    expect(isBusy(better('SQLITE_LOCKED_SHAREDCACHE'))).toBe(true);
    expect(isBusy(better('SQLITE_CONSTRAINT'))).toBe(false);
    expect(isBusy(new Error('x'))).toBe(false);
    expect(isBusy(null)).toBe(false);
  });

  it('renderTimeline() escapes text and keeps every point inside the plot', () => {
    const svg = renderTimeline({
      title: 'a <b> & "c"',
      subtitle: '',
      durationMs: 1000,
      lanes: [{ name: 'worker-1', segments: [{ from: 0, to: 2000, state: 'running' }], marks: [] }],
      series: [
        {
          name: 'running',
          color: '#000',
          points: [
            [0, 3],
            [500, 1],
            [1000, 0],
          ],
        },
      ],
      events: [{ at: 500, label: 'x' }],
    });
    expect(svg).toContain('a &#60;b&#62; &#38; &#34;c&#34;');
    expectWellFormedXml(svg);
    const xs = [...svg.matchAll(/<rect x="([\d.]+)"[^>]*width="([\d.]+)"/g)].map(
      (m) => Number(m[1]) + Number(m[2]),
    );
    expect(Math.max(...xs)).toBeLessThanOrEqual(1000);
  });
});
