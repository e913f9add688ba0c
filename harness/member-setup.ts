/**
 * What every member process does alike (the demo's worker, the chaos harness's member): its flags, its
 * backend, its controller and engine built from them, and its start, with the lines of member.ts.
 */
import {
  type Coordinator,
  DrainController,
  type Fence,
  installSignalHandlers,
  type ItemResult,
  type RecoverOutcome,
  type ShutdownReport,
  type WorkflowStore,
} from 'graceful-drain';
import {
  BACKENDS,
  type BackendConfig,
  type ConnectOptions,
  type Host,
  openCoordinator,
  openHost,
} from './backend.js';
import { Engine, ENGINE_MODES, type EngineOptions } from './engine.js';
import type { HostDb } from './host-db.js';
import {
  choice,
  type FlagSpecs,
  integer,
  optionalInteger,
  type Parsed,
  parseFlags,
  text,
  textOr,
  UsageError,
} from './flags.js';
import { errorJson, memberLines } from './member.js';
import { seededRandom } from './random.js';
import { POSTGRES_URL, REDIS_URL } from './servers.js';

/** The timings a tool gives its members by default. */
export interface MemberTimings {
  readonly stepMs: number;
  readonly claimTtlMs: number;
  readonly shutdownTimeoutMs: number;
  readonly memberTtlMs: number;
  readonly lockTtlMs: number;
}

/** The flags every member takes; `tool` names the defaults of the group, the key prefix and the schema. */
export function memberFlags(tool: string, member: string, t: MemberTimings) {
  return {
    backend: choice(BACKENDS, 'sqlite', 'the coordinator and store to use'),
    db: text('the SQLite file of the host tables (sqlite, redis) and of the coordinator (sqlite)', 'PATH'),
    id: textOr(`${member}-${process.pid}`, 'this member id in the group', 'ID'),
    group: textOr(tool, 'the group shared by the members', 'NAME'),
    concurrency: integer(1, 64, 2, 'steps run at once (--engine sticky: workflows held at once)'),
    engine: choice(
      ENGINE_MODES,
      'claims',
      'claims: a lease per step, lapsed when a member dies; sticky: a member drives the workflows it took up, a crash strands them',
    ),
    recovery: choice(
      ['resume', 'report'] as const,
      'resume',
      'DrainController recovery: crash recovery at start, or only its report',
    ),
    stepMs: integer(1, 600_000, t.stepMs, 'mean duration of a step, in ms', 'MS'),
    claimTtlMs: integer(
      100,
      600_000,
      t.claimTtlMs,
      "lease of a claimed workflow: a dead member frees it after this (sticky: a step's lease)",
      'MS',
    ),
    shutdownTimeoutMs: integer(100, 600_000, t.shutdownTimeoutMs, 'DrainController shutdownTimeoutMs', 'MS'),
    memberTtlMs: integer(100, 600_000, t.memberTtlMs, 'DrainController memberTtlMs', 'MS'),
    lockTtlMs: integer(100, 600_000, t.lockTtlMs, 'DrainController lockTtlMs', 'MS'),
    peerCheckIntervalMs: optionalInteger(
      0,
      600_000,
      'DrainController peerCheckIntervalMs (default: its own, memberTtlMs)',
      'MS',
    ),
    ownerColumn: text(
      "the host column naming the member that drives each workflow (the store's ownerColumn: live members recover a crashed peer's workflows)",
      'COLUMN',
    ),
    resumeIntervalMs: integer(1, 600_000, 200, 'DrainController resumeIntervalMs', 'MS'),
    resumeTimeoutMs: integer(1, 3_600_000, 30_000, 'DrainController resumeTimeoutMs', 'MS'),
    seed: integer(0, 2 ** 32 - 1, 1, 'seed of the step durations'),
    redisKeyPrefix: textOr(`graceful-drain-${tool}:`, 'prefix of the coordinator keys (redis)', 'PREFIX'),
    pgSchema: textOr(
      `graceful_drain_${tool}`,
      'schema of the host and graceful-drain tables (postgres)',
      'NAME',
    ),
  } satisfies FlagSpecs;
}

/** A member's configuration: its flags, parsed. */
export type MemberConfig = Parsed<ReturnType<typeof memberFlags>> & {
  readonly redisUrl?: string;
  readonly postgresUrl?: string;
};

/** Parses a member's command line (and environment): `--db` is required but on PostgreSQL. */
export function parseMemberFlags<S extends ReturnType<typeof memberFlags> & FlagSpecs>(
  argv: readonly string[],
  specs: S,
  env: NodeJS.ProcessEnv = {},
): Parsed<S> {
  const config = parseFlags(argv, specs, env);
  const help = (config as { help?: boolean }).help === true;
  if (!help && config.backend !== 'postgres' && config.db === undefined) {
    throw new UsageError(`--db is required with --backend ${config.backend}`);
  }
  return config;
}

/** The backend a member's flags name; the server URLs come from its flags, or the environment. */
export function memberBackend(config: MemberConfig): BackendConfig {
  return {
    backend: config.backend,
    dbPath: config.db ?? '',
    redisUrl: config.redisUrl ?? REDIS_URL,
    redisKeyPrefix: config.redisKeyPrefix,
    postgresUrl: config.postgresUrl ?? POSTGRES_URL,
    pgSchema: config.pgSchema,
  };
}

/**
 * Opens the host database and the coordinator. When it cannot: `onFailed`, a `FAILED` line, and the
 * process exits with code 1.
 */
export async function openMemberBackend(
  config: MemberConfig,
  options: ConnectOptions = {},
  onFailed?: (error: unknown) => void,
): Promise<{ host: Host; coordinator: Coordinator }> {
  let host: Host | undefined;
  let coordinator: Coordinator | undefined;
  try {
    host = await openHost(memberBackend(config), { ...options, ownerColumn: config.ownerColumn });
    coordinator = await openCoordinator(memberBackend(config), options);
    return { host, coordinator };
  } catch (error) {
    onFailed?.(error);
    await memberLines.send('FAILED', errorJson(error));
    await coordinator?.close();
    await host?.close();
    process.exit(1);
  }
}

/**
 * `store`, with every `recover()` call's results (and its fence) passed to `onRecovered` once it
 * resolved; the store itself when it cannot recover. Everything else goes to the store as it is.
 */
export function observeRecover(
  store: WorkflowStore,
  onRecovered: (results: readonly ItemResult<RecoverOutcome>[], fence: Fence) => void,
): WorkflowStore {
  const recover = store.recover?.bind(store);
  if (recover === undefined) return store;
  return new Proxy(store, {
    get(target, key) {
      if (key === 'recover') {
        return async (...args: Parameters<typeof recover>) => {
          const results = await recover(...args);
          onRecovered(results, args[1]);
          return results;
        };
      }
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** The member's controller, with the timings of its flags. */
export function memberController(
  config: MemberConfig,
  coordinator: Coordinator,
  store: WorkflowStore,
): DrainController {
  return new DrainController({
    group: config.group,
    memberId: config.id,
    coordinator,
    store,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    memberTtlMs: config.memberTtlMs,
    lockTtlMs: config.lockTtlMs,
    resumeIntervalMs: config.resumeIntervalMs,
    resumeTimeoutMs: config.resumeTimeoutMs,
    recovery: config.recovery,
    ...(config.peerCheckIntervalMs === undefined ? {} : { peerCheckIntervalMs: config.peerCheckIntervalMs }),
  });
}

/** The member's engine: its flags' concurrency, step duration, claim TTL and seed; the rest in `options`. */
export function memberEngine(
  config: MemberConfig,
  db: HostDb,
  drain: DrainController,
  options: Pick<EngineOptions, 'stepJitter' | 'pollMs' | 'sweepMs' | 'onEvent'>,
): Engine {
  return new Engine({
    ...options,
    mode: config.engine,
    db,
    drain,
    workerId: config.id,
    concurrency: config.concurrency,
    stepMs: config.stepMs,
    claimTtlMs: config.claimTtlMs,
    random: seededRandom(config.seed),
  });
}

/** What {@link startMember} does around the start. */
export interface StartOptions {
  /** Runs after the shutdown, whoever began it: reports it and closes everything. */
  readonly finish: (report: ShutdownReport) => Promise<void>;
  /** Ends the process with `code` (after a signal's shutdown, or a failed start). */
  readonly exit: (code: number) => void;
  readonly onFailed?: (error: unknown) => void;
  readonly onReady?: () => void;
}

/**
 * Starts a member: SIGTERM and SIGINT shut it down (`installSignalHandlers`, then `finish`); the
 * controller starts; `READY`, then the engine. A start that fails prints `FAILED`, shuts down, finishes
 * and exits with code 1; a signal during the start leaves it all to the signal's shutdown. Resolves
 * whether it started.
 */
export async function startMember(
  config: MemberConfig,
  drain: DrainController,
  engine: Engine,
  o: StartOptions,
): Promise<boolean> {
  installSignalHandlers(drain, { onShutdown: o.finish, exit: o.exit });
  let signalled = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => (signalled = true));
  try {
    await drain.start();
  } catch (error) {
    if (signalled) return false;
    o.onFailed?.(error);
    await memberLines.send('FAILED', errorJson(error));
    await o.finish(await drain.shutdown({ reason: 'start failed' }));
    o.exit(1);
    return false;
  }
  o.onReady?.();
  await memberLines.send('READY', { memberId: config.id, pid: process.pid, group: config.group });
  engine.start();
  return true;
}
