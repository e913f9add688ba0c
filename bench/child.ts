// Runs one suite in a process of its own (forked by main.ts with --expose-gc), so that no suite
// inherits another's heap, JIT state or open sockets; reports progress and the result over IPC.
import { suites } from './suites/registry.js';

export type ChildMessage =
  | { readonly type: 'progress'; readonly text: string }
  | { readonly type: 'result'; readonly result: unknown }
  | { readonly type: 'error'; readonly error: string }
  | { readonly type: 'handles'; readonly handles: readonly string[] };

const send = (message: ChildMessage): Promise<void> =>
  new Promise((resolve) => {
    if (process.send === undefined) {
      console.error(JSON.stringify(message));
      resolve();
    } else process.send(message, () => resolve());
  });

const [id, flags] = process.argv.slice(2);
const entry = suites.find((s) => s.id === id);
try {
  if (entry === undefined) throw new Error(`Unknown suite ${String(id)}`);
  const suite = await entry.load();
  const result = await suite.run({
    quick: flags === 'quick',
    progress: (text) => void send({ type: 'progress', text }),
  });
  await send({ type: 'result', result });
} catch (error) {
  await send({
    type: 'error',
    error: error instanceof Error ? (error.stack ?? error.message) : String(error),
  });
}
// What is still open once the suite is done would keep the process alive: the parent reports it.
await new Promise((resolve) => setTimeout(resolve, 50));
const handles = process
  .getActiveResourcesInfo()
  .filter((h) => !['PipeWrap', 'TTYWrap', 'Timeout', 'TimeoutWrap'].includes(h));
await send({ type: 'handles', handles });
process.disconnect?.();
