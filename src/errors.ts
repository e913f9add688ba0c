/**
 * Every error graceful-drain throws or reports extends {@link GracefulDrainError}: a stable `code` (see
 * docs/errors.md), a `name` equal to its class name, and `cause` passed through.
 * @packageDocumentation
 */

/** Options every graceful-drain error accepts. */
export interface GracefulDrainErrorOptions {
  /** The error that led to this one. */
  readonly cause?: unknown;
}

/** The stable code of every graceful-drain error, one per class. */
export type ErrorCode =
  | 'ERR_DRAIN_CLOSED'
  | 'ERR_DRAIN_TIMEOUT'
  | 'ERR_DRAIN_FORCED'
  | 'ERR_LOCK_TIMEOUT'
  | 'ERR_LOCK_LOST'
  | 'ERR_MEMBERSHIP_LOST'
  | 'ERR_STALE_TOKEN'
  | 'ERR_EVICTED_MEMBER'
  | 'ERR_CONFIGURATION'
  | 'ERR_COORDINATOR_UNAVAILABLE'
  | 'ERR_CLOSED'
  | 'ERR_MISSING_DRIVER';

/** An error as `JSON.stringify` renders it: name, code (for graceful-drain errors), message, cause. */
export interface SerializedError {
  readonly name: string;
  readonly code?: string;
  readonly message: string;
  readonly cause?: unknown;
}

/** Renders a thrown value for JSON: errors as {@link SerializedError} (causes too), bigints as strings. */
export function serializeError(value: unknown, depth = 0): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (!(value instanceof Error)) return value;
  const code = (value as { code?: unknown }).code;
  return {
    name: value.name,
    ...(typeof code === 'string' ? { code } : {}),
    message: value.message,
    ...(value.cause !== undefined && depth < 4 ? { cause: serializeError(value.cause, depth + 1) } : {}),
  };
}

/** The base class of every error graceful-drain throws. Branch on `code`, not on the message. */
export class GracefulDrainError extends Error {
  /** A stable, documented code, such as `ERR_DRAIN_CLOSED`. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: GracefulDrainErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
  }

  /** `JSON.stringify(error)` gives its name, code, message and cause. */
  toJSON(): SerializedError {
    return serializeError(this) as SerializedError;
  }
}

/** Thrown by `track()` (as a rejection) once shutdown has begun, or before `start()`: intake is closed. */
export class DrainClosedError extends GracefulDrainError {
  declare readonly code: 'ERR_DRAIN_CLOSED';
  constructor(
    message = 'Intake is closed: the controller is shutting down',
    options?: GracefulDrainErrorOptions,
  ) {
    super('ERR_DRAIN_CLOSED', message, options);
  }
}

/** The reason of a task's `signal` when the drain deadline passes, and of waits that ran out of budget. */
export class DrainTimeoutError extends GracefulDrainError {
  declare readonly code: 'ERR_DRAIN_TIMEOUT';
  constructor(message = 'The drain deadline passed', options?: GracefulDrainErrorOptions) {
    super('ERR_DRAIN_TIMEOUT', message, options);
  }
}

/** The reason of a task's `signal` when a shutdown is escalated with `force` (or a second signal). */
export class DrainForcedError extends GracefulDrainError {
  declare readonly code: 'ERR_DRAIN_FORCED';
  constructor(message = 'The shutdown was forced', options?: GracefulDrainErrorOptions) {
    super('ERR_DRAIN_FORCED', message, options);
  }
}

/** Rejected by `Coordinator.acquire()` when the lock could not be taken within `timeoutMs`. */
export class LockTimeoutError extends GracefulDrainError {
  declare readonly code: 'ERR_LOCK_TIMEOUT';
  constructor(message = 'The lock could not be acquired in time', options?: GracefulDrainErrorOptions) {
    super('ERR_LOCK_TIMEOUT', message, options);
  }
}

/**
 * The reason of a `Lease.signal`: the lease could not be renewed or was taken away. Raised *before*
 * another holder can acquire the lock.
 */
export class LockLostError extends GracefulDrainError {
  declare readonly code: 'ERR_LOCK_LOST';
  constructor(message = 'The lock was lost', options?: GracefulDrainErrorOptions) {
    super('ERR_LOCK_LOST', message, options);
  }
}

/** The reason a `Membership.signal` is aborted with: the member is no longer in its group. */
export class MembershipLostError extends GracefulDrainError {
  declare readonly code: 'ERR_MEMBERSHIP_LOST';
  constructor(message = 'The group membership was lost', options?: GracefulDrainErrorOptions) {
    super('ERR_MEMBERSHIP_LOST', message, options);
  }
}

/** Rejected by a `WorkflowStore` write whose fencing token is lower than one it has already seen. */
export class StaleTokenError extends GracefulDrainError {
  declare readonly code: 'ERR_STALE_TOKEN';
  /** The token the write carried. */
  readonly token: bigint;
  /** The highest token the store had seen. */
  readonly highest: bigint;

  constructor(token: bigint, highest: bigint, options?: GracefulDrainErrorOptions) {
    super(
      'ERR_STALE_TOKEN',
      `Fencing token ${token} is stale: the store has already seen token ${highest}`,
      options,
    );
    this.token = token;
    this.highest = highest;
  }
}

/**
 * Rejected by a `WorkflowStore` call whose `fence.incarnation` a live member evicted when it recovered
 * that incarnation's workflows (it had lost its membership and was taken for dead); nothing was written.
 * The process must not drive the group's workflows any more: stop it, or start a new controller.
 */
export class EvictedMemberError extends GracefulDrainError {
  declare readonly code: 'ERR_EVICTED_MEMBER';
  /** The member id of the evicted incarnation. */
  readonly memberId: string;
  /** The evicted incarnation. */
  readonly incarnation: string;

  constructor(memberId: string, incarnation: string, options?: GracefulDrainErrorOptions) {
    super(
      'ERR_EVICTED_MEMBER',
      `Member "${memberId}" (incarnation ${incarnation}) was evicted: a live member recovered its workflows after its membership expired`,
      options,
    );
    this.memberId = memberId;
    this.incarnation = incarnation;
  }
}

/** Thrown by a constructor or a function given an option or argument it cannot use. */
export class ConfigurationError extends GracefulDrainError {
  declare readonly code: 'ERR_CONFIGURATION';
  constructor(message: string, options?: GracefulDrainErrorOptions) {
    super('ERR_CONFIGURATION', message, options);
  }
}

/** Rejected by an adapter whose backend cannot be reached or answered with an error. */
export class CoordinatorUnavailableError extends GracefulDrainError {
  declare readonly code: 'ERR_COORDINATOR_UNAVAILABLE';
  constructor(message = 'The coordinator could not be reached', options?: GracefulDrainErrorOptions) {
    super('ERR_COORDINATOR_UNAVAILABLE', message, options);
  }
}

/** Rejected by an operation on an adapter that has been closed. */
export class ClosedError extends GracefulDrainError {
  declare readonly code: 'ERR_CLOSED';
  constructor(message = 'The adapter is closed', options?: GracefulDrainErrorOptions) {
    super('ERR_CLOSED', message, options);
  }
}

/** Rejected by an optional adapter whose driver package is not installed. */
export class MissingDriverError extends GracefulDrainError {
  declare readonly code: 'ERR_MISSING_DRIVER';
  /** @param options - `hint` is appended to the message: another way out than installing `driver`. */
  constructor(
    driver: string,
    adapter: string,
    options?: GracefulDrainErrorOptions & { readonly hint?: string },
  ) {
    super(
      'ERR_MISSING_DRIVER',
      `${adapter} needs the package \`${driver}\`: install it with \`npm install ${driver}\`${options?.hint ?? ''}`,
      options,
    );
  }
}
