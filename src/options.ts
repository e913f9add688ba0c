import { hostname } from 'node:os';
import type { Coordinator, CoordinatorScope } from './coordinator.js';
import { ConfigurationError } from './errors.js';
import {
  checkCount,
  checkName,
  checkNonNegative,
  checkOneOf,
  checkOptionsObject,
  checkPositive,
  invalid,
} from './validate.js';
import type { WorkflowStore } from './workflow-store.js';

/** What the last member does when the coordinator cannot be reached at shutdown. */
export type UnreachablePolicy = 'skip' | 'park';

/** Options of {@link DrainController}. Every field is optional; unknown names are rejected. */
export interface DrainControllerOptions {
  /**
   * The group this member belongs to: the members that share workflows. Required with a coordinator:
   * two services that share a backend under one default group would count each other as peers, and
   * neither would ever park. Without a coordinator it only names the controller in logs and metrics.
   * @defaultValue `'default'` without a coordinator; none (required) with one
   */
  readonly group?: string;
  /**
   * This member's id in the group; unique among live members.
   * @defaultValue `<hostname>:<pid>:<random>`
   */
  readonly memberId?: string;
  /** Distributed lock and group membership. Give it together with `store` to enable the cluster hand-off. */
  readonly coordinator?: Coordinator;
  /** The host's workflows. Give it together with `coordinator` to enable the cluster hand-off. */
  readonly store?: WorkflowStore;
  /**
   * The one budget of a shutdown, in milliseconds, from `shutdown()` to its report: intake stoppers, drain
   * and hand-off all fit inside it. Keep it below the platform's grace period (Kubernetes: 30 s).
   * @defaultValue `25_000`
   */
  readonly shutdownTimeoutMs?: number;
  /**
   * The share of `shutdownTimeoutMs` the drain phase may take, in (0, 1]; the hand-off gets the rest.
   * @defaultValue `1` without a coordinator, `0.6` with one
   */
  readonly drainShare?: number;
  /**
   * How long tasks get, after their `signal` aborts at the drain deadline, to settle before they are
   * reported as stragglers and the shutdown moves on. Taken out of the drain phase, at most half of it.
   * @defaultValue `1_000`
   */
  readonly abortGraceMs?: number;
  /**
   * Where the members of this group run: `process` (one process), `host` (processes on one machine) or
   * `cluster` (several machines). The controller refuses a coordinator whose scope is narrower, since it
   * could not see the other members and every member would think it was last.
   * @defaultValue the coordinator's scope
   */
  readonly groupScope?: CoordinatorScope;
  /**
   * What the last member does when the coordinator cannot be reached at shutdown: `skip` parks nothing
   * and reports it; `park` parks the active workflows unfenced (StackStorm's "safety measure").
   * @defaultValue `'skip'`
   */
  readonly unreachablePolicy?: UnreachablePolicy;
  /**
   * TTL of the group's start-stop lock, in milliseconds (renewed every third of it while held).
   * @defaultValue `10_000`
   */
  readonly lockTtlMs?: number;
  /**
   * TTL of this member's membership, in milliseconds (a heartbeat every third of it).
   * @defaultValue `15_000`
   */
  readonly memberTtlMs?: number;
  /**
   * How many workflows one park or unpark call handles, and the page size of listings.
   * @defaultValue `500`
   */
  readonly batchSize?: number;
  /**
   * At start, how long the background resume may keep trying, in milliseconds (workflows still
   * `pausing` are re-checked until then).
   * @defaultValue `60_000`
   */
  readonly resumeTimeoutMs?: number;
  /**
   * At start, the interval between re-checks of parked workflows still `pausing`, in milliseconds.
   * @defaultValue `1_000`
   */
  readonly resumeIntervalMs?: number;
  /**
   * At start, how long joining the group may take before `start()` rejects, in milliseconds.
   * @defaultValue `10_000`
   */
  readonly startTimeoutMs?: number;
}

/** The options with every default filled in and every value checked. */
export interface CompiledOptions {
  readonly group: string;
  readonly memberId: string;
  /** The hand-off pair, when both were given. */
  readonly handOff: { readonly coordinator: Coordinator; readonly store: WorkflowStore } | undefined;
  readonly shutdownTimeoutMs: number;
  readonly drainShare: number;
  readonly abortGraceMs: number;
  readonly groupScope: CoordinatorScope | undefined;
  readonly unreachablePolicy: UnreachablePolicy;
  readonly lockTtlMs: number;
  readonly memberTtlMs: number;
  readonly batchSize: number;
  readonly resumeTimeoutMs: number;
  readonly resumeIntervalMs: number;
  readonly startTimeoutMs: number;
}

/** The defaults, frozen. */
export const defaultOptions = Object.freeze({
  group: 'default',
  shutdownTimeoutMs: 25_000,
  abortGraceMs: 1_000,
  unreachablePolicy: 'skip' as UnreachablePolicy,
  lockTtlMs: 10_000,
  memberTtlMs: 15_000,
  batchSize: 500,
  resumeTimeoutMs: 60_000,
  resumeIntervalMs: 1_000,
  startTimeoutMs: 10_000,
});

const knownOptions: readonly (keyof DrainControllerOptions)[] = [
  'group',
  'memberId',
  'coordinator',
  'store',
  'shutdownTimeoutMs',
  'drainShare',
  'abortGraceMs',
  'groupScope',
  'unreachablePolicy',
  'lockTtlMs',
  'memberTtlMs',
  'batchSize',
  'resumeTimeoutMs',
  'resumeIntervalMs',
  'startTimeoutMs',
];

const scopeRank: Record<CoordinatorScope, number> = { process: 0, host: 1, cluster: 2 };
const scopes: readonly CoordinatorScope[] = ['process', 'host', 'cluster'];

function checkCoordinator(value: unknown): Coordinator {
  const c = value as Partial<Coordinator> | null;
  if (
    c === null ||
    typeof c !== 'object' ||
    typeof c.acquire !== 'function' ||
    typeof c.join !== 'function' ||
    typeof c.members !== 'function' ||
    typeof c.close !== 'function' ||
    typeof c.capabilities !== 'object'
  ) {
    invalid('coordinator', 'a Coordinator (acquire, join, members, close, capabilities)', value);
  }
  checkOneOf('coordinator.capabilities.scope', c.capabilities?.scope, scopes);
  return c as Coordinator;
}

function checkStore(value: unknown): WorkflowStore {
  const s = value as Partial<WorkflowStore> | null;
  if (
    s === null ||
    typeof s !== 'object' ||
    typeof s.listActive !== 'function' ||
    typeof s.park !== 'function' ||
    typeof s.listParked !== 'function' ||
    typeof s.unpark !== 'function' ||
    typeof s.raiseFence !== 'function' ||
    typeof s.notePaused !== 'function'
  ) {
    invalid('store', 'a WorkflowStore (listActive, park, listParked, unpark, raiseFence, notePaused)', value);
  }
  return s as WorkflowStore;
}

/** Fills in the defaults and checks every option; throws a ConfigurationError naming the option and value. */
export function compileOptions(input: unknown): CompiledOptions {
  const o = checkOptionsObject('DrainController', input, knownOptions);
  const coordinator = o.coordinator === undefined ? undefined : checkCoordinator(o.coordinator);
  const store = o.store === undefined ? undefined : checkStore(o.store);
  if ((coordinator === undefined) !== (store === undefined)) {
    const missing = coordinator === undefined ? 'coordinator' : 'store';
    const given = coordinator === undefined ? 'store' : 'coordinator';
    throw new ConfigurationError(
      `The cluster hand-off needs both \`coordinator\` and \`store\`: \`${given}\` was given, \`${missing}\` is ${describeMissing(o[missing])}`,
    );
  }
  const handOff = coordinator !== undefined;
  if (handOff && o.group === undefined) {
    throw new ConfigurationError(
      'Expected `group` to be a non-empty string naming the members that share workflows, got `undefined`: it is required with a `coordinator` (members of different services on one backend would otherwise see each other as peers, and none would ever park)',
    );
  }
  const groupScope =
    o.groupScope === undefined
      ? coordinator?.capabilities.scope
      : checkOneOf('groupScope', o.groupScope, scopes);
  if (coordinator !== undefined && groupScope !== undefined) {
    const scope = coordinator.capabilities.scope;
    if (scopeRank[scope] < scopeRank[groupScope]) {
      throw new ConfigurationError(
        `Expected a coordinator that can see members across \`groupScope\` \`"${groupScope}"\`, got one whose scope is \`"${scope}"\`: every member would think it was the last one and park the group's workflows`,
      );
    }
  }
  const shutdownTimeoutMs =
    o.shutdownTimeoutMs === undefined
      ? defaultOptions.shutdownTimeoutMs
      : checkPositive('shutdownTimeoutMs', o.shutdownTimeoutMs);
  let drainShare = handOff ? 0.6 : 1;
  if (o.drainShare !== undefined) {
    const share = o.drainShare;
    if (typeof share !== 'number' || !Number.isFinite(share) || share <= 0 || share > 1) {
      invalid('drainShare', 'a number in (0, 1]', share);
    }
    drainShare = share;
  }
  const pick = (name: keyof typeof defaultOptions, check: (n: string, v: unknown) => number): number =>
    o[name] === undefined ? (defaultOptions[name] as number) : check(name, o[name]);
  return Object.freeze({
    group: o.group === undefined ? defaultOptions.group : checkName('group', o.group),
    memberId:
      o.memberId === undefined
        ? `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 10)}`
        : checkName('memberId', o.memberId),
    handOff:
      coordinator === undefined || store === undefined ? undefined : Object.freeze({ coordinator, store }),
    shutdownTimeoutMs,
    drainShare,
    abortGraceMs: pick('abortGraceMs', checkNonNegative),
    groupScope,
    unreachablePolicy:
      o.unreachablePolicy === undefined
        ? defaultOptions.unreachablePolicy
        : checkOneOf('unreachablePolicy', o.unreachablePolicy, ['skip', 'park'] as const),
    lockTtlMs: pick('lockTtlMs', checkPositive),
    memberTtlMs: pick('memberTtlMs', checkPositive),
    batchSize: pick('batchSize', checkCount),
    resumeTimeoutMs: pick('resumeTimeoutMs', checkPositive),
    resumeIntervalMs: pick('resumeIntervalMs', checkPositive),
    startTimeoutMs: pick('startTimeoutMs', checkPositive),
  });
}

function describeMissing(value: unknown): string {
  return value === undefined ? 'missing' : 'invalid';
}
