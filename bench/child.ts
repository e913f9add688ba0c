// Runs one suite in a process of its own (started by main.ts with --expose-gc), so that no suite
// inherits another's heap, JIT state or open sockets; reports progress and the result in lines on
// stdout (`childLines`).
import { childLines } from './lib/result.js';
import { suites } from './suites/registry.js';

const [id, flags] = process.argv.slice(2);
const entry = suites.find((s) => s.id === id);
try {
  if (entry === undefined) throw new Error(`Unknown suite ${String(id)}`);
  const suite = await entry.load();
  const result = await suite.run({
    quick: flags === 'quick',
    progress: (text) => void childLines.send('PROGRESS', { text }),
  });
  await childLines.send('RESULT', result);
} catch (error) {
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  await childLines.send('ERROR', { error: text });
}
// What is still open once the suite is done would keep the process alive: the parent reports it.
await new Promise((resolve) => setTimeout(resolve, 50));
const handles = process
  .getActiveResourcesInfo()
  .filter((h) => !['PipeWrap', 'TTYWrap', 'Timeout', 'TimeoutWrap'].includes(h));
await childLines.send('HANDLES', { handles });
