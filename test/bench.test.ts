import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { writeDocument } from '../bench/lib/document.js';
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
  }, 120_000);

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
