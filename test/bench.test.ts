import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseArgs } from '../bench/lib/args.js';
import { writeDocument } from '../bench/lib/document.js';
import { mergeRuns, readRun } from '../bench/lib/merge.js';
import { renderMarkdown, type Run } from '../bench/lib/render.js';
import type { Chart, Check, SuiteResult } from '../bench/lib/result.js';
import { renderChart } from '../bench/lib/svg-chart.js';
import { verdict } from '../bench/lib/verdict.js';
import { suites } from '../bench/suites/registry.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const doc = join(root, 'docs', 'performance.md');

async function bench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn('npm', ['run', '--silent', 'bench', '--', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

describe('npm run bench', () => {
  // A smoke run (about 90 s on a busy 2-core machine): it checks that every suite runs, not how fast.
  it('--quick runs every suite, prints their results and leaves docs/performance.md alone', async () => {
    const before = existsSync(doc) ? readFileSync(doc, 'utf8') : undefined;
    const { code, stdout, stderr } = await bench(['--quick']);
    expect(code, `stderr:\n${stderr}\nstdout:\n${stdout}`).toBe(0);
    for (const { title } of suites) expect(stdout).toContain(`== ${title}`);
    const targets = stdout.slice(stdout.indexOf('== Targets'));
    expect(targets).toMatch(/\b(met|missed)\b/);
    expect(targets).not.toContain('failed');
    expect(stdout).toContain('--quick: no document written');
    // Progress goes to stderr, one line per suite at least.
    expect(stderr).toContain(`[${suites.length}/${suites.length}]`);
    expect(existsSync(doc) ? readFileSync(doc, 'utf8') : undefined).toBe(before);
  }, 300_000);

  it('rejects an unknown argument with exit code 2 and the usage', async () => {
    const { code, stderr } = await bench(['--no-such-flag']);
    expect(code).toBe(2);
    expect(stderr).toContain('bench: Unknown option --no-such-flag; see --help');
    expect(stderr).toContain('Usage: npm run bench');
  }, 30_000);
});

describe('writeDocument()', () => {
  it('replaces only the generated part, keeping the text written around the markers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gd-bench-doc-'));
    try {
      const path = join(dir, 'performance.md');
      await writeDocument(path, 'first figures');
      const created = readFileSync(path, 'utf8');
      expect(created).toContain('first figures');
      writeFileSync(path, `${created}\n## Analysis\n\nwritten by hand\n`);
      await writeDocument(path, 'second figures');
      const updated = readFileSync(path, 'utf8');
      expect(updated).toContain('second figures');
      expect(updated).not.toContain('first figures');
      expect(updated).toContain('written by hand');
      expect(updated.startsWith('# Performance')).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A suite's result as the runner holds it, with the given targets. */
function result(id: string, checks: Check[], extra: Partial<SuiteResult> = {}): SuiteResult {
  return { id, title: id, method: 'how', tables: [], checks, notes: [], ...extra };
}

const met: Check = { target: 'fast', measured: '1x', status: 'met' };
const missed: Check = { target: 'faster', measured: '3x', status: 'missed' };
const unmeasured: Check = { target: 'later', measured: '', status: 'not measured' };

describe('--strict', () => {
  it('parseArgs() reads it, off by default', () => {
    expect(parseArgs(['--strict'], []).strict).toBe(true);
    expect(parseArgs(['--quick'], []).strict).toBe(false);
  });

  it('verdict(): a missed target exits with code 1 under --strict, 0 without', () => {
    const run = [result('a', [met, unmeasured]), result('b', [met, missed])];
    expect(verdict(run, true)).toEqual({ failed: 0, missed: 1, exitCode: 1 });
    expect(verdict(run, false)).toEqual({ failed: 0, missed: 1, exitCode: 0 });
  });

  it('verdict(): every target met (or not measured) exits with code 0 under --strict', () => {
    expect(verdict([result('a', [met, unmeasured]), result('b', [])], true).exitCode).toBe(0);
  });

  it('verdict(): a failed suite exits with code 1 with or without --strict', () => {
    const run = [result('a', [met]), result('b', [], { error: 'timed out after 60 s' })];
    expect(verdict(run, false)).toEqual({ failed: 1, missed: 0, exitCode: 1 });
    expect(verdict(run, true).exitCode).toBe(1);
  });
});

const chart: Chart = {
  file: 'chart.svg',
  title: 'Park <time> & resume',
  subtitle: 'medians',
  x: { label: 'workflows', scale: 'log', format: 'count', ticks: [10_000, 100_000, 1_000_000] },
  y: { label: 'time', scale: 'log', format: 'ms' },
  series: [
    {
      name: 'park',
      color: '#2563eb',
      points: [
        [10_000, 120],
        [100_000, 1_300],
        [1_000_000, 14_000],
      ],
    },
    {
      name: 'resume',
      color: '#16a34a',
      dashed: true,
      points: [
        [10_000, 150],
        [100_000, Number.NaN],
        [1_000_000, 16_000],
      ],
    },
  ],
};

describe('renderChart()', () => {
  it("draws one line per series with a dot per finite point, ticks in the axes' formats, text escaped", () => {
    const svg = renderChart(chart);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('<title>Park &lt;time&gt; &amp; resume</title>');
    expect(svg).not.toContain('<time>');
    for (const label of ['10k', '100k', '1M', '100 ms', '1 s', '10 s'])
      expect(svg).toContain(`>${label}</text>`);
    expect(svg.match(/<path d="M[^"]*" stroke="#2563eb" stroke-width="2" fill="none"\/>/g)).toHaveLength(1);
    expect(svg).toContain('stroke="#16a34a" stroke-width="2" stroke-dasharray="6 4" fill="none"');
    // 3 dots for park, 2 for resume (its NaN is left out), 1 each in the legend.
    expect(svg.match(/<circle cx="[\d.]+" cy="[\d.]+" r="3" fill="#2563eb"/g)).toHaveLength(4);
    expect(svg.match(/<circle cx="[\d.]+" cy="[\d.]+" r="3" fill="#16a34a"/g)).toHaveLength(3);
    expect(svg).not.toContain('NaN');
  });

  it('puts larger values higher and further right, on log and linear axes alike', () => {
    const dots = (svg: string, color: string): [number, number][] =>
      [
        ...svg.matchAll(
          new RegExp(`<circle cx="([\\d.]+)" cy="([\\d.]+)" r="3" fill="${color}"><title>`, 'g'),
        ),
      ].map((m) => [Number(m[1]), Number(m[2])]);
    for (const scale of ['log', 'linear'] as const) {
      const svg = renderChart({ ...chart, x: { ...chart.x, scale }, y: { ...chart.y, scale } });
      const [a, b, c] = dots(svg, '#2563eb') as [[number, number], [number, number], [number, number]];
      expect(a[0]).toBeLessThan(b[0]);
      expect(b[0]).toBeLessThan(c[0]);
      expect(a[1]).toBeGreaterThan(b[1]);
      expect(b[1]).toBeGreaterThan(c[1]);
    }
  });

  it('refuses a value a log axis cannot show', () => {
    const bad: Chart = { ...chart, series: [{ name: 'zero', color: '#000', points: [[0, 1]] }] };
    expect(() => renderChart(bad)).toThrow('A log axis (workflows) cannot show 0');
  });

  it('says so when there is nothing to draw', () => {
    expect(renderChart({ ...chart, series: [] })).toContain('No data.');
  });
});

const machine = {
  date: '2026-12-06T00:00:00.000Z',
  cpu: 'cpu',
  cores: 2,
  memory: '1 GiB',
  os: 'os',
  node: 'v20',
  v8: '11',
  loadAtStart: 0,
};

describe('--base', () => {
  const earlier: Run = {
    machine: { ...machine, date: '2026-12-05T23:00:00.000Z' },
    command: 'npm run bench -- --json full.json',
    quick: false,
    suites: [result('a', [met]), result('b', [missed]), result('gone', [met])],
  };

  it("mergeRuns() keeps this run's suites, takes the others from the earlier run, marked, in the given order", () => {
    const merged = mergeRuns([result('b', [met])], earlier, ['a', 'b', 'c']);
    expect(merged.map((s) => [s.id, s.checks[0]?.status, s.earlier?.command])).toEqual([
      ['a', 'met', 'npm run bench -- --json full.json'],
      ['b', 'met', undefined],
    ]);
    const text = renderMarkdown({
      machine,
      command: 'npm run bench -- --only b',
      quick: false,
      suites: merged,
    });
    expect(text).toContain(
      'Taken from an earlier run on this machine, `npm run bench -- --json full.json` on 2026-12-05: "a".',
    );
    expect(text).toContain('_From an earlier run: `npm run bench -- --json full.json` on 2026-12-05._');
  });

  it('readRun() names the file that is not the results of a run', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gd-bench-base-'));
    try {
      const path = join(dir, 'run.json');
      writeFileSync(path, JSON.stringify({ suites: [] }));
      expect(() => readRun(path)).toThrow(`${path} is not the results of a run (write them with --json)`);
      writeFileSync(path, '{');
      expect(() => readRun(path)).toThrow(`cannot read ${path} as JSON`);
      writeFileSync(path, JSON.stringify(earlier));
      expect(readRun(path).suites.map((s) => s.id)).toEqual(['a', 'b', 'gone']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('renderMarkdown()', () => {
  it("links a suite's charts from its section", () => {
    const text = renderMarkdown({
      machine,
      command: 'npm run bench',
      quick: false,
      suites: [result('scaling', [met], { charts: [chart] })],
    });
    expect(text).toContain('![Park <time> & resume](chart.svg)');
  });
});
