import { afterEach, describe } from 'vitest';

// Tokens only grow across the whole suite, so each is above any an earlier case used. They all have the
// same number of digits: the case comparing tokens of different lengths uses small ones of its own.
let lastToken = BigInt(Date.now()) * 1000n;
/** A fencing token above every one handed out before. */
export const nextToken = (): bigint => (lastToken += 10n);

/** Settles with the rejection reason, failing when the promise resolves. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('Expected the promise to reject, but it resolved');
}

/**
 * Registers `body` in `describe(title)`, then `describe(name)`, whose `make()` instances are closed after
 * each test. Without `name`, one instance is made while the suite is collected, to read its name.
 */
export function contractSuite<T extends { close(): Promise<void> }>(
  title: string,
  name: string | undefined,
  nameOf: (instance: T) => string,
  factory: () => T | Promise<T>,
  body: (make: () => Promise<T>) => void,
): void {
  describe(title, async () => {
    if (name === undefined) {
      const probe = await factory();
      name = nameOf(probe);
      await probe.close();
    }
    describe(name, () => {
      const open: T[] = [];
      // close() never throws: a rejection here fails the test.
      afterEach(async () => {
        await Promise.all(open.splice(0).map((t) => t.close()));
      });
      body(async () => {
        const t = await factory();
        open.push(t);
        return t;
      });
    });
  });
}
