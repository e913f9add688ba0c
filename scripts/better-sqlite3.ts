/**
 * Installs better-sqlite3 for the running Node.js when it is missing or does not work there.
 *
 * better-sqlite3 is not a devDependency: on Node.js 22.13 and later the SQLite adapters run on the built-in
 * `node:sqlite`, and `npm install` builds nothing native. It is installed on demand, without saving
 * (`npm install --no-save`): better-sqlite3 13 on Node.js 22 and later (prebuilt binaries, no install
 * script, nothing compiled), better-sqlite3 12 on Node.js 20 (13 crashes there), compiled against the
 * running Node.js's own headers. Nothing happens when the installed copy loads and a process that used it
 * exits cleanly (better-sqlite3 12 built for Node.js 20 aborts at exit on Node.js 24, say).
 *
 * Run before `npm run demo`, `bench` and `chaos` (`tsx scripts/better-sqlite3.ts`), and as vitest's global
 * setup, so that the better-sqlite3 driver's tests run on every Node.js version.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The better-sqlite3 for Node.js 22 and later, and the last one that supports Node.js 20. */
const VERSION = '13.2.0';
const FOR_NODE_20 = '12.11.1';

/** Why better-sqlite3 does not work here, or `undefined` when it does. */
function probe(): string | undefined {
  const run = spawnSync(
    process.execPath,
    [
      '-e',
      "const D = require('better-sqlite3'); const db = new D(':memory:'); db.prepare('SELECT 1').get(); db.close()",
    ],
    { cwd: ROOT, encoding: 'utf8', timeout: 60_000 },
  );
  if (run.status === 0 && run.signal === null) return undefined;
  if (/Cannot find module 'better-sqlite3'/.test(run.stderr)) return 'not installed';
  const error = /^\w*Error: .*$/m.exec(run.stderr)?.[0];
  return `${run.signal ?? `exit code ${run.status}`}${error === undefined ? '' : `, ${error}`}`;
}

/** The version to install for the running Node.js. */
const wanted = (): string => (Number(process.versions.node.split('.')[0]) < 22 ? FOR_NODE_20 : VERSION);

/**
 * The environment for npm: native code is built against the running Node.js's own headers, where it has
 * them (an npmrc's `nodedir` may name another version's).
 */
function npmEnv(): NodeJS.ProcessEnv {
  const prefix = dirname(dirname(process.execPath));
  const header = join(prefix, 'include', 'node', 'node_version.h');
  if (!existsSync(header)) return process.env;
  const text = readFileSync(header, 'utf8');
  const part = (name: string) => new RegExp(`#define NODE_${name}_VERSION (\\d+)`).exec(text)?.[1];
  const version = `v${part('MAJOR')}.${part('MINOR')}.${part('PATCH')}`;
  return version === process.version ? { ...process.env, npm_config_nodedir: prefix } : process.env;
}

const LOCK = join(ROOT, 'node_modules', '.better-sqlite3-install.lock');
/** How long a process waits for another one's install before it gives up. */
const LOCK_WAIT_MS = 10 * 60_000;

const sleep = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

/** Whether process `pid` still runs. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs `fn` holding the install lock (a folder in node_modules), so that processes that start at once
 * (`npm test` beside `npm run demo`, say) never run two installs into one node_modules. A lock whose
 * holder has died is taken over.
 */
function withInstallLock(fn: () => void): void {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      mkdirSync(LOCK);
      writeFileSync(join(LOCK, 'pid'), String(process.pid));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      let holder = Number.NaN;
      try {
        holder = Number(readFileSync(join(LOCK, 'pid'), 'utf8'));
      } catch {
        // Just created, its pid not written yet.
      }
      if (Number.isInteger(holder) && !alive(holder)) {
        rmSync(LOCK, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new Error(`Another process has been installing better-sqlite3 for too long (lock: ${LOCK})`, {
          cause: error,
        });
      }
      sleep(250);
    }
  }
  try {
    fn();
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}

/** Installs better-sqlite3 for this Node.js if the installed copy does not work here. */
export function ensureBetterSqlite3(): void {
  if (probe() === undefined) return;
  mkdirSync(dirname(LOCK), { recursive: true });
  // Checked again under the lock: another process may have installed it meanwhile.
  withInstallLock(install);
}

function install(): void {
  const problem = probe();
  if (problem === undefined) return;
  const version = wanted();
  const compiled = version === FOR_NODE_20 ? ', compiled: a minute or two' : '';
  console.error(`better-sqlite3 on Node.js ${process.version}: ${problem}; installing ${version}${compiled}`);
  // The npm that runs this script (npm run, npm test), else the one on PATH.
  const execPath = process.env.npm_execpath;
  const [command, prefix] =
    execPath !== undefined && /npm-cli\.js$/.test(execPath) ? [process.execPath, [execPath]] : ['npm', []];
  const install = spawnSync(
    command,
    [...prefix, 'install', '--no-save', '--save-dev', '--no-audit', '--no-fund', `better-sqlite3@${version}`],
    { cwd: ROOT, env: npmEnv(), stdio: ['ignore', 'inherit', 'inherit'] },
  );
  if (install.status !== 0) {
    throw new Error(`npm install better-sqlite3@${version} failed (${install.signal ?? install.status})`);
  }
  const still = probe();
  if (still !== undefined) {
    throw new Error(`better-sqlite3@${version} still does not work on Node.js ${process.version}: ${still}`);
  }
}

/** vitest's global setup. */
export function setup(): void {
  ensureBetterSqlite3();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) ensureBetterSqlite3();
