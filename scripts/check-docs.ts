/**
 * Every TypeScript block in the README and docs/ is something a user will paste: this extracts each
 * ```ts block into a file of its own and type-checks them all under `strict`, against the BUILT
 * package (dist/, through the package's own `exports`), the way a user's project would see it. Blocks
 * fenced as ```ts run are self-contained: they are also run, each in a child process that must exit 0
 * within 20 s.
 *
 * Usage: tsx scripts/check-docs.ts (after `npm run build`).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');
const work = join(root, 'node_modules', '.cache', 'check-docs');

function markdownFiles(): string[] {
  const found = ['README.md'];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory() && entry.name !== 'api') walk(path);
      else if (entry.name.endsWith('.md')) found.push(path);
    }
  };
  walk('docs');
  for (const example of readdirSync(join(root, 'examples'), { withFileTypes: true })) {
    if (example.isDirectory()) {
      const readme = join('examples', example.name, 'README.md');
      try {
        readFileSync(join(root, readme));
        found.push(readme);
      } catch {
        // no README in this example
      }
    }
  }
  return found;
}

interface Block {
  readonly file: string;
  readonly line: number;
  readonly code: string;
  readonly run: boolean;
  readonly name: string;
}

const blocks: Block[] = [];
for (const file of markdownFiles()) {
  const text = readFileSync(join(root, file), 'utf8');
  // Indented blocks too (inside a list item): their indentation, the fence's, is taken off every line.
  const fence = /^( *)```ts( run)?\n([\s\S]*?)^\1```$/gm;
  for (const match of text.matchAll(fence)) {
    const line = text.slice(0, match.index).split('\n').length;
    const name = `${file.replace(/[/.]/g, '_')}_${line}.ts`;
    const indent = match[1] ?? '';
    const code = (match[3] ?? '')
      .split('\n')
      .map((l) => (l.startsWith(indent) ? l.slice(indent.length) : l))
      .join('\n');
    blocks.push({ file, line, code, run: match[2] !== undefined, name });
  }
}

rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
// The package resolves as a user would: through node_modules/graceful-drain and its `exports`.
mkdirSync(join(work, 'node_modules'), { recursive: true });
symlinkSync(root, join(work, 'node_modules', 'graceful-drain'), 'dir');
writeFileSync(join(work, 'package.json'), JSON.stringify({ type: 'module', private: true }));
writeFileSync(
  join(work, 'tsconfig.json'),
  JSON.stringify({
    compilerOptions: {
      target: 'ES2023',
      lib: ['ES2023', 'ESNext.Disposable', 'DOM'],
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      types: ['node'],
      typeRoots: [join(root, 'node_modules', '@types')],
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      // Each block is its own module (a block without imports would otherwise share a global scope).
      moduleDetection: 'force',
    },
    include: ['*.ts'],
  }),
);
for (const block of blocks) writeFileSync(join(work, block.name), block.code);

const failures: string[] = [];
const tsc = spawnSync(
  process.execPath,
  [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', work],
  {
    encoding: 'utf8',
    // Driver packages (amqplib, pg, ...) resolve from the project's own node_modules.
    env: { ...process.env, NODE_PATH: join(root, 'node_modules') },
  },
);
if (tsc.status !== 0) {
  // Point each error at the Markdown file and line it came from.
  const byName = new Map(blocks.map((b) => [b.name, b]));
  const errors = `${tsc.stdout}${tsc.stderr}`.replace(
    /^(?:[^\s(]*\/)?([\w.-]+\.ts)\((\d+),(\d+)\)/gm,
    (all, name, line) => {
      const block = byName.get(name as string);
      return block === undefined ? all : `${block.file}:${block.line + Number(line)}`;
    },
  );
  failures.push(`TypeScript blocks that do not compile under strict:\n${errors}`);
}

for (const block of blocks.filter((b) => b.run)) {
  const started = performance.now();
  try {
    execFileSync(process.execPath, ['--import', 'tsx', join(work, block.name)], {
      cwd: work,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 20_000,
      env: { ...process.env, NODE_PATH: join(root, 'node_modules') },
    });
  } catch (error) {
    const e = error as { stderr?: Buffer; status?: number };
    failures.push(
      `${block.file}:${block.line}: the block did not run (exit ${e.status ?? '?'}, ${Math.round(performance.now() - started)} ms):\n${e.stderr?.toString() ?? String(error)}`,
    );
  }
}

const ran = blocks.filter((b) => b.run).length;
if (failures.length > 0) {
  console.error(
    `check-docs: ${failures.length} problem(s) in ${blocks.length} blocks\n${failures.join('\n')}`,
  );
  process.exit(1);
}
console.log(
  `check-docs: ${blocks.length} TypeScript blocks compile under strict (${relative(root, work)}), ${ran} ran`,
);
