/**
 * Packaging checks, run by `npm test` after the build:
 *  1. `npm pack` contains the build, the Markdown guides of docs/ (`prepack` adds the API reference in
 *     docs/api), and nothing else;
 *  2. publint finds no packaging error;
 *  3. arethetypeswrong (ESM) resolves every subpath export with its types;
 *  4. the packed tarball, installed into an empty project with no optional peer, imports the core,
 *     `graceful-drain/memory` and `graceful-drain/testing` (no test runner), an adapter whose driver is
 *     missing says so with MissingDriverError, and `graceful-drain/testing/vitest` needs vitest.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const failures: string[] = [];
const step = (name: string): void => console.log(`check-package: ${name}`);
// The build is checked as it is: `npm pack` (here, in attw and publint) must not run `prepack` again.
const env = { ...process.env, npm_config_ignore_scripts: 'true' };

function run(command: string, args: string[], cwd = root): string {
  return execFileSync(command, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, unknown>;
  peerDependencies: Record<string, string>;
};

step('npm pack contents');
const [packed] = JSON.parse(run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'])) as [
  { files: { path: string }[] },
];
const files = packed.files.map((f) => f.path);
for (const required of [
  'package.json',
  'README.md',
  'CHANGELOG.md',
  'LICENSE',
  'dist/index.js',
  'dist/index.d.ts',
  'docs/protocol.md',
  'docs/errors.md',
  'docs/integrations/http.md',
]) {
  if (!files.includes(required)) failures.push(`npm pack is missing ${required}`);
}
for (const [subpath, target] of Object.entries(pkg.exports)) {
  if (typeof target !== 'object' || target === null) continue;
  for (const file of Object.values(target as Record<string, string>)) {
    if (!files.includes(file.replace(/^\.\//, '')))
      failures.push(`export ${subpath} points at ${file}, not packed`);
  }
}
const stray = files.filter(
  (f) =>
    !/^(dist\/.*\.(js|d\.ts)|docs\/.*\.md|docs\/api\/.*|package\.json|README\.md|CHANGELOG\.md|LICENSE)$/.test(
      f,
    ),
);
if (stray.length > 0) failures.push(`npm pack includes unexpected files: ${stray.join(', ')}`);

step('publint');
try {
  const out = run('npx', ['publint', '--strict']);
  if (/error|warning/i.test(out) && !/All good/i.test(out)) failures.push(`publint:\n${out}`);
} catch (error) {
  failures.push(`publint failed:\n${(error as { stdout?: string }).stdout ?? String(error)}`);
}

step('arethetypeswrong (ESM)');
try {
  run('npx', ['attw', '--pack', '.', '--profile', 'esm-only', '--format', 'ascii']);
} catch (error) {
  failures.push(`attw failed:\n${(error as { stdout?: string }).stdout ?? String(error)}`);
}

step('install the tarball with no optional peer, and import');
const dir = mkdtempSync(join(tmpdir(), 'graceful-drain-pack-'));
try {
  const tarball =
    run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir]).trim().split('\n').pop() ?? '';
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module' }),
  );
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(dir, tarball)], dir);
  const installed = run('npm', ['ls', '--all', '--parseable'], dir);
  for (const peer of Object.keys(pkg.peerDependencies)) {
    if (installed.includes(`/node_modules/${peer}\n`)) failures.push(`optional peer ${peer} was installed`);
  }
  writeFileSync(
    join(dir, 'check.mjs'),
    `
import { DrainController, GracefulDrainError } from 'graceful-drain';
import { MemoryCoordinator, MemoryWorkflowStore } from 'graceful-drain/memory';
import { RedisCoordinator } from 'graceful-drain/redis';
const drain = new DrainController({ group: 'check', coordinator: new MemoryCoordinator(), store: new MemoryWorkflowStore() });
await drain.start();
if ((await drain.track(() => 42)) !== 42) throw new Error('track');
const report = await drain.shutdown();
if (report.outcome !== 'clean') throw new Error('report ' + report.outcome);
const coordinator = new RedisCoordinator({ url: 'redis://127.0.0.1:1' });
try {
  await coordinator.members('g');
  throw new Error('expected MissingDriverError');
} catch (error) {
  if (!(error instanceof GracefulDrainError) || error.code !== 'ERR_MISSING_DRIVER') throw error;
} finally {
  await coordinator.close();
}
const { FaultyCoordinator, memoryStoreHarness } = await import('graceful-drain/testing');
const faulty = new FaultyCoordinator(new MemoryCoordinator());
faulty.fail(['members']);
const failed = await faulty.members('g').then(() => undefined, (error) => error);
if (failed?.code !== 'ERR_COORDINATOR_UNAVAILABLE') throw new Error('FaultyCoordinator: ' + failed);
await faulty.close();
const harness = memoryStoreHarness();
await harness.add('w1', 'running');
if ((await harness.status('w1')) !== 'running') throw new Error('memoryStoreHarness');
await harness.close();
try {
  await import('graceful-drain/testing/vitest');
  throw new Error('graceful-drain/testing/vitest loaded without vitest');
} catch (error) {
  if (error.code !== 'ERR_MODULE_NOT_FOUND' || !String(error.message).includes("'vitest'")) throw error;
}
console.log('ok');
`,
  );
  const out = run('node', ['check.mjs'], dir);
  if (!out.includes('ok')) failures.push(`import check printed: ${out}`);
} catch (error) {
  const e = error as { stdout?: string; stderr?: string };
  failures.push(`install/import check failed:\n${e.stdout ?? ''}${e.stderr ?? String(error)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

if (failures.length > 0) {
  console.error(`check-package: ${failures.length} problem(s)\n- ${failures.join('\n- ')}`);
  process.exit(1);
}
console.log('check-package: ok');
