import { describe, expect, it } from 'vitest';
import { ConfigurationError, DrainController } from '../src/index.js';
import { MemoryCoordinator, MemoryWorkflowStore } from '../src/adapters/memory/index.js';

describe('new DrainController() validation', () => {
  const cases: [string, Record<string, unknown>, string][] = [
    [
      'misspelt option',
      { shutdownTimeoutMS: 1000 },
      'Unknown option `shutdownTimeoutMS` for DrainController (did you mean `shutdownTimeoutMs`?)',
    ],
    [
      'negative budget',
      { shutdownTimeoutMs: -1 },
      'Expected `shutdownTimeoutMs` to be a finite number greater than 0, got `-1` (number)',
    ],
    [
      'zero budget',
      { shutdownTimeoutMs: 0 },
      'Expected `shutdownTimeoutMs` to be a finite number greater than 0, got `0` (number)',
    ],
    ['infinite budget', { shutdownTimeoutMs: Infinity }, 'got `Infinity` (number)'],
    ['NaN budget', { shutdownTimeoutMs: Number.NaN }, 'got `NaN` (number)'],
    ['string budget', { shutdownTimeoutMs: '25s' }, 'got `"25s"` (string)'],
    ['share of zero', { drainShare: 0 }, 'Expected `drainShare` to be a number in (0, 1], got `0` (number)'],
    [
      'share above one',
      { drainShare: 1.5 },
      'Expected `drainShare` to be a number in (0, 1], got `1.5` (number)',
    ],
    [
      'share of one with a coordinator',
      { drainShare: 1, group: 'g', coordinator: new MemoryCoordinator(), store: new MemoryWorkflowStore() },
      'Expected `drainShare` to be a number in (0, 1) with a coordinator (1 leaves the hand-off no time to park), got `1` (number)',
    ],
    [
      'negative grace',
      { abortGraceMs: -5 },
      'Expected `abortGraceMs` to be a finite number from 0 up, got `-5` (number)',
    ],
    ['empty group', { group: '' }, 'Expected `group` to be a non-empty string, got `""` (string)'],
    [
      'bad policy',
      { unreachablePolicy: 'maybe' },
      'Expected `unreachablePolicy` to be one of `skip`, `park`, got `"maybe"` (string)',
    ],
    [
      'fractional batch',
      { batchSize: 2.5 },
      'Expected `batchSize` to be a whole number from 1 up, got `2.5` (number)',
    ],
    [
      'bad scope',
      { groupScope: 'planet' },
      'Expected `groupScope` to be one of `process`, `host`, `cluster`, got `"planet"`',
    ],
    ['bad coordinator', { coordinator: {}, store: {} }, 'Expected `coordinator` to be a Coordinator'],
    [
      'non-object options',
      42 as never,
      'Expected `DrainController options` to be an object, got `42` (number)',
    ],
  ];
  it.each(cases)('rejects a %s, naming the option and the value', (_, options, message) => {
    expect(() => new DrainController(options as never)).toThrow(ConfigurationError);
    expect(() => new DrainController(options as never)).toThrow(message);
  });

  it('rejects a duration a timer cannot wait', () => {
    expect(() => new DrainController({ shutdownTimeoutMs: 3e9 })).toThrow(
      'Expected `shutdownTimeoutMs` to be a number of milliseconds up to 2147483647, got `3000000000` (number)',
    );
  });

  it('errors carry a stable code and name', () => {
    try {
      new DrainController({ drainShare: 2 });
    } catch (error) {
      expect(error).toMatchObject({ code: 'ERR_CONFIGURATION', name: 'ConfigurationError' });
    }
    expect.assertions(1);
  });
});
