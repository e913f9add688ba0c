// `npm run bench`: every target of the performance issue, each figure against a baseline measured in
// the same run. Suites run one at a time, each in a child process of its own (with --expose-gc);
// results go to stdout and, on full runs or with --out, into docs/performance.md, with the suites'
// charts as SVG files beside it. With --strict a missed target makes the exit code 1.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCommandLine } from '../harness/flags.js';
import { ScriptProcess } from '../harness/process.js';
import { parseArgs, USAGE } from './lib/args.js';
import { buildLibrary, removeBuild } from './lib/build.js';
import { writeDocument } from './lib/document.js';
import { LIBRARY_ENV } from './lib/library.js';
import { mergeRuns, readRun } from './lib/merge.js';
import { describeMachine } from './lib/machine.js';
import { Progress } from './lib/progress.js';
import { renderChecksText, renderMarkdown, renderSuiteText, type Run } from './lib/render.js';
import { type ChildMessages, childLines, type SuiteResult } from './lib/result.js';
import { renderChart } from './lib/svg-chart.js';
import { verdict } from './lib/verdict.js';
import { suites } from './suites/registry.js';

const DEFAULT_OUT = fileURLToPath(new URL('../docs/performance.md', import.meta.url));
const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url));
/** How long a suite may take before it is stopped (a hung server, a lost wake-up). */
const SUITE_TIMEOUT_MS = { quick: 60_000, full: 20 * 60_000 };

const argv = process.argv.slice(2);
const args = parseCommandLine(
  'bench',
  () =>
    parseArgs(
      argv,
      suites.map((s) => s.id),
    ),
  USAGE,
);
if (args.help) {
  console.log(`${USAGE}\n\nSuites: ${suites.map((s) => s.id).join(', ')}`);
  process.exit(0);
}

let earlier: Run | undefined;
try {
  earlier = args.base === undefined ? undefined : readRun(args.base);
} catch (error) {
  console.error(`bench: --base: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(2);
}

const selected = args.only.length === 0 ? suites : suites.filter((s) => args.only.includes(s.id));
// Only a full run of every suite replaces the figures of docs/performance.md.
const out = args.out ?? (args.quick || args.only.length > 0 ? undefined : DEFAULT_OUT);
const machine = describeMachine();
const progress = new Progress(selected.length);
const results: SuiteResult[] = [];

console.log(
  `graceful-drain benchmarks${args.quick ? ' (--quick)' : ''}: ${machine.cpu}, ${machine.cores} cores, ` +
    `Node.js ${machine.node}, load ${machine.loadAtStart.toFixed(2)}`,
);

const buildStart = performance.now();
const library = buildLibrary();
process.on('exit', () => removeBuild(library));
console.error(`Built the library from src/ in ${((performance.now() - buildStart) / 1000).toFixed(1)} s`);

for (const { id, title } of selected) {
  progress.begin(title);
  const startedAt = performance.now();
  const result = await runChild(id, title, args.quick, (text) => progress.update(text));
  const elapsedMs = performance.now() - startedAt;
  const done = { ...result, elapsedMs };
  results.push(done);
  const missed = done.checks.filter((c) => c.status === 'missed').length;
  progress.end(
    done.error !== undefined
      ? 'FAILED'
      : `done, ${done.checks.length - missed}/${done.checks.length} targets met`,
  );
  console.log(`\n${renderSuiteText(done)}\n`);
}
machine.loadAtEnd = os.loadavg()[0] ?? 0;

console.log(renderChecksText(results));
const command = `npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`;
const reported =
  earlier === undefined
    ? results
    : mergeRuns(
        results,
        earlier,
        suites.map((s) => s.id),
      );
const run: Run = { machine, command, quick: args.quick, suites: reported };
if (args.json !== undefined) {
  mkdirSync(dirname(args.json), { recursive: true });
  writeFileSync(args.json, `${JSON.stringify(run, null, 2)}\n`);
  console.log(`\nWrote ${args.json}`);
}
if (out !== undefined) {
  await writeDocument(out, renderMarkdown(run));
  console.log(`\nWrote ${out}`);
  for (const chart of reported.flatMap((r) => r.charts ?? [])) {
    const path = join(dirname(out), chart.file);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, renderChart(chart));
    console.log(`Wrote ${path}`);
  }
} else {
  console.log(`\n${args.quick ? '--quick' : '--only'}: no document written (give --out <path> to write one)`);
}

const { failed, missed, exitCode } = verdict(results, args.strict);
if (failed > 0) console.error(`${failed} suite(s) failed`);
if (missed > 0) console.error(`${missed} target(s) missed${args.strict ? ' (--strict: exit code 1)' : ''}`);
process.exitCode = exitCode;

/** Runs suite `id` in a child process and collects its result; a crash or a hang becomes an error. */
async function runChild(
  id: string,
  title: string,
  quick: boolean,
  onProgress: (text: string) => void,
): Promise<SuiteResult> {
  let result: SuiteResult | undefined;
  const notes: string[] = [];
  const fail = (error: string): SuiteResult => ({
    id,
    title,
    method: '',
    tables: [],
    checks: [],
    notes: [],
    error,
  });
  let exitTimer: NodeJS.Timeout | undefined;
  const child: ScriptProcess<ChildMessages> = new ScriptProcess({
    script: CHILD,
    args: [id, quick ? 'quick' : 'full'],
    protocol: childLines,
    nodeArgs: ['--expose-gc'],
    env: { [LIBRARY_ENV]: library },
    onMessage: (message) => {
      if (message.kind === 'PROGRESS') onProgress(message.data.text);
      else if (message.kind === 'RESULT') result = { id, title, ...message.data };
      else if (message.kind === 'ERROR') result = fail(message.data.error);
      else {
        if (message.data.handles.length > 0) {
          notes.push(
            `Once the suite was done, still open in its process: ${message.data.handles.join(', ')}.`,
          );
        }
        // The suite is done: it should exit on its own; if something holds it, stop it and say so.
        exitTimer = setTimeout(() => {
          notes.push('The suite process did not exit on its own within 3 s and was killed.');
          child.signal('SIGKILL');
        }, 3_000);
      }
    },
    onLine: (line, stream) => (stream === 'stdout' ? console.log(line) : console.error(line)),
  });
  const timeoutMs = quick ? SUITE_TIMEOUT_MS.quick : SUITE_TIMEOUT_MS.full;
  const timer = setTimeout(() => {
    result ??= fail(`timed out after ${timeoutMs / 1000} s`);
    child.signal('SIGKILL');
  }, timeoutMs);
  const { code, signal } = await child.exited;
  clearTimeout(timer);
  clearTimeout(exitTimer);
  const final = result ?? fail(`the suite process exited (code ${code}, signal ${signal}) without a result`);
  return { ...final, notes: [...final.notes, ...notes] };
}
