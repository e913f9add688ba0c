/** subscribe(): typed listeners on the diagnostics channels. */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { ConfigurationError, DrainController, type DrainMessage, subscribe } from '../src/index.js';

describe('subscribe()', () => {
  it('delivers typed messages until it is undone', async () => {
    const seen: DrainMessage[] = [];
    const stop = subscribe('drain', (m) => {
      expectTypeOf(m).toEqualTypeOf<DrainMessage>();
      seen.push(m);
    });
    const first = new DrainController({ group: 'metrics-subscribe' });
    await first.start();
    await first.shutdown();
    stop();
    const second = new DrainController({ group: 'metrics-subscribe' });
    await second.start();
    await second.shutdown();
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ group: 'metrics-subscribe', inFlightAtStart: 0, aborted: 0 });
  });

  it('refuses an unknown channel key, naming it', () => {
    expect(() => subscribe('drains' as never, () => {})).toThrow(ConfigurationError);
    expect(() => subscribe('drains' as never, () => {})).toThrow('`key`');
  });
});
