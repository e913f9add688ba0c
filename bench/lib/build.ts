import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SRC = join(ROOT, 'src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/**
 * Emits src/ as JavaScript the way `npm run build` does (TypeScript's own emit, file by file, which
 * `isolatedModules` makes equivalent), into a directory under node_modules/.cache so the library's
 * dependencies resolve. The bench measures this output, not src/ through tsx: tsx's esbuild transform
 * sets `keepNames`, which wraps every closure in a `__name()` call (an `Object.defineProperty` per
 * closure created), several times slower than the code users run on paths that create closures.
 *
 * Returns the directory; the caller removes it with {@link removeBuild}.
 */
export function buildLibrary(): string {
  const out = join(ROOT, 'node_modules', '.cache', 'graceful-drain-bench', `build-${process.pid}`);
  rmSync(out, { recursive: true, force: true });
  const compilerOptions: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2023,
    // ESM in, ESM out: what NodeNext emits for a "type": "module" package.
    module: ts.ModuleKind.ESNext,
    verbatimModuleSyntax: true,
    sourceMap: false,
  };
  for (const file of sources(SRC)) {
    const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
      fileName: file,
      compilerOptions,
    });
    const target = join(out, relative(SRC, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, outputText);
  }
  return out;
}

export function removeBuild(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
