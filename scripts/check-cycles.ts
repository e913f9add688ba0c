/**
 * Fails when modules of this repository import each other in a cycle, run by `npm run lint`. Type-only
 * imports count too (the ESLint import rules skip them): a type that two modules share belongs in a
 * third. Static `import` and `export ... from` only; a dynamic `import()` is a lazy load, not a cycle.
 */
import { relative } from 'node:path';
import ts from 'typescript';

const root = new URL('..', import.meta.url).pathname;
const configFile = ts.findConfigFile(root, ts.sys.fileExists, 'tsconfig.json') ?? 'tsconfig.json';
const { config } = ts.readConfigFile(configFile, ts.sys.readFile) as { config: unknown };
const { options, fileNames } = ts.parseJsonConfigFileContent(config, ts.sys, root);
const files = new Set(fileNames);

function importsOf(file: string): string[] {
  const source = ts.createSourceFile(file, ts.sys.readFile(file) ?? '', ts.ScriptTarget.Latest);
  const found: string[] = [];
  for (const statement of source.statements) {
    const specifier =
      ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement)
        ? statement.moduleSpecifier
        : undefined;
    if (specifier === undefined || !ts.isStringLiteral(specifier)) continue;
    const resolved = ts.resolveModuleName(specifier.text, file, options, ts.sys).resolvedModule;
    if (resolved !== undefined && files.has(resolved.resolvedFileName)) found.push(resolved.resolvedFileName);
  }
  return found;
}

const graph = new Map([...files].map((file) => [file, importsOf(file)]));

// Tarjan's strongly connected components: every component of more than one module is a cycle.
const index = new Map<string, number>();
const low = new Map<string, number>();
const stack: string[] = [];
const onStack = new Set<string>();
const cycles: string[][] = [];
function visit(file: string): void {
  index.set(file, index.size);
  low.set(file, index.get(file)!);
  stack.push(file);
  onStack.add(file);
  for (const next of graph.get(file) ?? []) {
    if (!index.has(next)) {
      visit(next);
      low.set(file, Math.min(low.get(file)!, low.get(next)!));
    } else if (onStack.has(next)) low.set(file, Math.min(low.get(file)!, index.get(next)!));
  }
  if (low.get(file) !== index.get(file)) return;
  const component: string[] = [];
  let member: string;
  do {
    member = stack.pop()!;
    onStack.delete(member);
    component.push(member);
  } while (member !== file);
  if (component.length > 1 || graph.get(file)!.includes(file)) cycles.push(component);
}
for (const file of graph.keys()) if (!index.has(file)) visit(file);

/** One concrete loop through a component, from its first module back to it. */
function loopThrough(component: readonly string[]): string[] {
  const inside = new Set(component);
  const start = component[0]!;
  const cameFrom = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const file = queue.shift()!;
    for (const next of graph.get(file) ?? []) {
      if (next === start) {
        const path = [file];
        while (path[0] !== start) path.unshift(cameFrom.get(path[0]!)!);
        return [...path, start];
      }
      if (inside.has(next) && !cameFrom.has(next)) {
        cameFrom.set(next, file);
        queue.push(next);
      }
    }
  }
  return [...component];
}

if (cycles.length > 0) {
  process.stderr.write(`check-cycles: ${cycles.length} import cycle(s), type-only imports included\n`);
  for (const component of cycles) {
    process.stderr.write(
      `- ${loopThrough(component.sort())
        .map((f) => relative(root, f))
        .join(' -> ')}\n`,
    );
  }
  process.exitCode = 1;
}
