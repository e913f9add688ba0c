import { hostname } from 'node:os';
import type { Coordinator, CoordinatorLiveness, CoordinatorScope, FencingGuarantee } from './coordinator.js';
import { ConfigurationError } from './errors.js';
import {
  checkCount,
  checkName,
  checkNonNegative,
  checkOneOf,
  checkOptionsObject,
  checkPositive,
  hasMethods,
  invalid,
} from './validate.js';
import type { WorkflowStore } from './workflow-store.js';

/** What the last member does when the coordinator cannot be reached at shutdown. */
export type UnreachablePolicy = 'skip' | 'park';

/**
 * A host hook for crash recovery: re-dispatches a batch of workflows a crash left running (the store has
 * counted each). Honour `signal`: it aborts when the start's budget ends or a shutdown begins.
 */
export type RecoveryHook = (
  ids: readonly string[],
  options: { readonly signal: AbortSignal; readonly generation: number },
) => Promise<void>;

/**
 * How the start hands back workflows a crash left running: `resume` parks them so the background resume
 * re-drives them; `report` only counts them; a {@link RecoveryHook} re-dispatches them.
 */
export type RecoveryPolicy = 'resume' | 'report' | RecoveryHook;

/** Options of {@link DrainController}. Every field is optional; unknown names are rejected. */
export interface DrainControllerOptions {
  /**
   * The members that share workflows. Required with a coordinator, so that two services on one backend
   * never count each other as peers; without one it only names the controller in logs and metrics.
   * @defaultValue `'default'` without a coordinator; none (required) with one
   */
  readonly group?: string;
  /** This member's id in the group; unique among live members. @defaultValue `<hostname>:<pid>:<random>` */
  readonly memberId?: string;
  /** Distributed lock and group membership. Give it together with `store` to enable the cluster hand-off. */
  readonly coordinator?: Coordinator;
  /** The host's workflows. Give it together with `coordinator` to enable the cluster hand-off. */
  readonly store?: WorkflowStore;
  /**
   * The one budget of a shutdown, in ms, from `shutdown()` to its report; keep it below the platform's
   * grace period (Kubernetes: 30 s). @defaultValue `25_000`
   */
  readonly shutdownTimeoutMs?: number;
  /**
   * The share of `shutdownTimeoutMs` the drain may take, in (0, 1]; the hand-off gets the rest.
   * @defaultValue `1` without a coordinator, `0.6` with one
   */
  readonly drainShare?: number;
  /**
   * How long tasks get, after their `signal` aborts at the drain deadline, to settle before they are
   * reported as stragglers; taken out of the drain phase, at most half of it. @defaultValue `1_000`
   */
  readonly abortGraceMs?: number;
  /**
   * Where the members run: `process`, `host` (one machine) or `cluster`; a coordinator with a narrower
   * scope is refused (every member would think it was last). @defaultValue the coordinator's scope
   */
  readonly groupScope?: CoordinatorScope;
  /**
   * When the coordinator cannot be reached at shutdown: `skip` parks nothing and reports it; `park` parks
   * the active workflows unfenced (StackStorm's "safety measure"). @defaultValue `'skip'`
   */
  readonly unreachablePolicy?: UnreachablePolicy;
  /** TTL of the group's start-stop lock, in ms (renewed every third of it). @defaultValue `10_000` */
  readonly lockTtlMs?: number;
  /** TTL of this member's membership, in ms (a heartbeat every third of it). @defaultValue `15_000` */
  readonly memberTtlMs?: number;
  /**
   * How many workflows one park, unpark or recover call handles (one transaction each on the SQL stores);
   * the page size of listings and of a recovery hook's batches. @defaultValue `2_000`
   */
  readonly batchSize?: number;
  /** How long the background resume may re-check workflows still `pausing`, in ms. @defaultValue `60_000` */
  readonly resumeTimeoutMs?: number;
  /** The interval between re-checks of parked workflows still `pausing`, in ms. @defaultValue `1_000` */
  readonly resumeIntervalMs?: number;
  /** How long joining the group may take before `start()` rejects, in ms. @defaultValue `10_000` */
  readonly startTimeoutMs?: number;
  /**
   * How a start hands back the workflows that a crash of the group's last member left running (see
   * docs/protocol.md, "After a crash"). @defaultValue `'resume'`
   */
  readonly recovery?: RecoveryPolicy;
  /** How many times a workflow may be recovered before it moves to the host's failed status. @defaultValue `3` */
  readonly maxRecoveries?: number;
  /**
   * How often, in ms, a running member checks for crashed peers, when the store knows who drives what
   * (`listOwned` and `evictMembers`): a peer whose membership is gone is evicted and its workflows handed
   * back by the `recovery` policy while the group keeps running (docs/protocol.md, "A peer crashes while
   * the group runs"). A check that finds every registered peer alive takes no lock. `0` turns it off.
   * Without that store capability it does nothing. @defaultValue `memberTtlMs`
   */
  readonly peerCheckIntervalMs?: number;
}

/** The options with every default filled in and every value checked. */
export type CompiledOptions = Required<
  Omit<DrainControllerOptions, 'coordinator' | 'store' | 'groupScope'>
> & {
  /** The hand-off pair, when both were given. */
  readonly handOff: { readonly coordinator: Coordinator; readonly store: WorkflowStore } | undefined;
};

/** The defaults, frozen. */
const defaultOptions = Object.freeze({
  group: 'default',
  shutdownTimeoutMs: 25_000,
  abortGraceMs: 1_000,
  unreachablePolicy: 'skip' as UnreachablePolicy,
  lockTtlMs: 10_000,
  memberTtlMs: 15_000,
  batchSize: 2_000,
  resumeTimeoutMs: 60_000,
  resumeIntervalMs: 1_000,
  startTimeoutMs: 10_000,
  recovery: 'resume' as RecoveryPolicy,
  maxRecoveries: 3,
});

// In this order in the "known options" hint of an unknown option.
const knownOptions = (
  'group memberId coordinator store shutdownTimeoutMs drainShare abortGraceMs groupScope ' +
  'unreachablePolicy lockTtlMs memberTtlMs batchSize resumeTimeoutMs resumeIntervalMs startTimeoutMs ' +
  'recovery maxRecoveries peerCheckIntervalMs'
).split(' ');

const scopes: readonly CoordinatorScope[] = ['process', 'host', 'cluster'];
const fencings: readonly FencingGuarantee[] = ['monotonic', 'best-effort', 'none'];
const livenesses: readonly CoordinatorLiveness[] = ['ttl', 'connection'];

function checkCoordinator(value: unknown): Coordinator {
  const c = value as Partial<Coordinator> | null;
  if (!hasMethods(c, 'acquire', 'join', 'members', 'close') || typeof c.capabilities !== 'object') {
    invalid('coordinator', 'a Coordinator (acquire, join, members, close, capabilities)', value);
  }
  checkOneOf('coordinator.capabilities.scope', c.capabilities?.scope, scopes);
  // The protocol trusts the tokens unless fencing is exactly 'none': a misspelt value must not pass.
  checkOneOf('coordinator.capabilities.fencing', c.capabilities?.fencing, fencings);
  checkOneOf('coordinator.capabilities.liveness', c.capabilities?.liveness, livenesses);
  return c as Coordinator;
}

function checkRecovery(name: string, value: unknown): RecoveryPolicy {
  if (typeof value === 'function') return value as RecoveryHook;
  if (value === 'resume' || value === 'report') return value;
  return invalid(
    name,
    "`'resume'`, `'report'` or a function `(ids, { signal, generation }) => Promise<void>`",
    value,
  );
}

function checkCount0(name: string, value: unknown): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) invalid(name, 'a whole number from 0 up', value);
  return value as number;
}

/** Fills in the defaults and checks every option; throws a ConfigurationError naming the option and value. */
export function compileOptions(input: unknown): CompiledOptions {
  const o = checkOptionsObject('DrainController', input, knownOptions);
  const coordinator = o.coordinator === undefined ? undefined : checkCoordinator(o.coordinator);
  const storeMethods = ['listActive', 'park', 'listParked', 'unpark', 'raiseFence', 'notePaused'];
  if (o.store !== undefined && !hasMethods(o.store, ...storeMethods)) {
    invalid('store', `a WorkflowStore (${storeMethods.join(', ')})`, o.store);
  }
  const store = o.store as WorkflowStore | undefined;
  if ((coordinator === undefined) !== (store === undefined)) {
    const [given, missing] = coordinator === undefined ? ['store', 'coordinator'] : ['coordinator', 'store'];
    throw new ConfigurationError(
      `The cluster hand-off needs both \`coordinator\` and \`store\`: \`${given}\` was given, \`${missing}\` is ${o[missing] === undefined ? 'missing' : 'invalid'}`,
    );
  }
  if (coordinator !== undefined && o.group === undefined) {
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
    if (scopes.indexOf(scope) < scopes.indexOf(groupScope)) {
      throw new ConfigurationError(
        `Expected a coordinator that can see members across \`groupScope\` \`"${groupScope}"\`, got one whose scope is \`"${scope}"\`: every member would think it was the last one and park the group's workflows`,
      );
    }
  }
  const pick = <T>(name: keyof typeof defaultOptions, check: (name: string, value: unknown) => T): T =>
    o[name] === undefined ? (defaultOptions[name] as T) : check(name, o[name]);
  const shutdownTimeoutMs = pick('shutdownTimeoutMs', checkPositive);
  const memberTtlMs = pick('memberTtlMs', checkPositive);
  const drainShare = o.drainShare === undefined ? (coordinator !== undefined ? 0.6 : 1) : o.drainShare;
  if (typeof drainShare !== 'number' || !Number.isFinite(drainShare) || drainShare <= 0 || drainShare > 1) {
    invalid('drainShare', 'a number in (0, 1]', drainShare);
  }
  // With a hand-off, a drain that may take the whole budget leaves the last member no time to park: the
  // group's running workflows would be left to a crash recovery.
  if (drainShare === 1 && coordinator !== undefined) {
    invalid(
      'drainShare',
      'a number in (0, 1) with a coordinator (1 leaves the hand-off no time to park)',
      drainShare,
    );
  }
  return Object.freeze({
    group: pick('group', checkName),
    memberId:
      o.memberId === undefined
        ? `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 10)}`
        : checkName('memberId', o.memberId),
    handOff:
      coordinator === undefined || store === undefined ? undefined : Object.freeze({ coordinator, store }),
    shutdownTimeoutMs,
    drainShare,
    abortGraceMs: pick('abortGraceMs', checkNonNegative),
    unreachablePolicy: pick('unreachablePolicy', (n, v) => checkOneOf(n, v, ['skip', 'park'] as const)),
    lockTtlMs: pick('lockTtlMs', checkPositive),
    memberTtlMs,
    batchSize: pick('batchSize', checkCount),
    resumeTimeoutMs: pick('resumeTimeoutMs', checkPositive),
    resumeIntervalMs: pick('resumeIntervalMs', checkPositive),
    startTimeoutMs: pick('startTimeoutMs', checkPositive),
    recovery: pick('recovery', checkRecovery),
    maxRecoveries: pick('maxRecoveries', checkCount0),
    peerCheckIntervalMs:
      o.peerCheckIntervalMs === undefined
        ? memberTtlMs
        : checkNonNegative('peerCheckIntervalMs', o.peerCheckIntervalMs),
  });
}
