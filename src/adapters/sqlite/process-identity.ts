/**
 * Who owns a lease or a membership row, precisely enough to tell at once that the owner's process is
 * gone, without ever mistaking a reused pid for the original owner.
 *
 * On Linux a process is identified by its pid plus its start time (field 22 of `/proc/<pid>/stat`,
 * clock ticks since boot), within a scope made of the boot id and the pid namespace: a pid only means
 * the same thing to processes that share both. Elsewhere, or when `/proc` cannot be read, the identity
 * has no start time and no scope, and liveness falls back to the TTL alone.
 *
 * @internal
 */

import { readFileSync, readlinkSync } from 'node:fs';

/** The identity recorded with a row. */
export interface ProcessIdentity {
  /** The process id. */
  readonly pid: number;
  /** The process start time, `null` when unknown. */
  readonly start: string | null;
  /** Where `pid` is meaningful (boot id and pid namespace), `null` when unknown. */
  readonly scope: string | null;
}

/** The fields of `/proc/<pid>/stat` this module reads, or `undefined` when the file cannot be read. */
function readStat(pid: number): { state: string; start: string } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Field 2 (the command) is parenthesised and may itself hold spaces and parentheses.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const start = fields[19];
  if (state === undefined || start === undefined || !/^\d+$/.test(start)) return undefined;
  return { state, start };
}

function readScope(): string | null {
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const namespace = readlinkSync('/proc/self/ns/pid');
    return boot.length > 0 && namespace.length > 0 ? `${boot}/${namespace}` : null;
  } catch {
    return null;
  }
}

let self: ProcessIdentity | undefined;

/** This process's identity (computed once). */
export function selfIdentity(): ProcessIdentity {
  if (self === undefined) {
    const scope = process.platform === 'linux' ? readScope() : null;
    const start = scope === null ? undefined : readStat(process.pid)?.start;
    self =
      scope === null || start === undefined
        ? { pid: process.pid, start: null, scope: null }
        : { pid: process.pid, start, scope };
  }
  return self;
}

/** Whether a process with this pid exists (zombies included); `true` when it cannot be told. */
function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Whether the process that recorded `owner` is certainly gone: it no longer exists, is a zombie, or
 * its pid now belongs to a process started at another time. `false` when it cannot be told (another
 * host scope, no start time recorded, `/proc` hidden): the TTL decides then.
 */
export function isGone(owner: ProcessIdentity): boolean {
  const mine = selfIdentity();
  if (owner.scope === null || owner.start === null || owner.scope !== mine.scope) return false;
  if (owner.pid === mine.pid) return owner.start !== mine.start;
  if (!Number.isSafeInteger(owner.pid) || owner.pid <= 0) return false;
  // kill(pid, 0) is the authority on existence: /proc may hide other users' processes (hidepid).
  if (!pidExists(owner.pid)) return true;
  const stat = readStat(owner.pid);
  if (stat === undefined) return false;
  return stat.state === 'Z' || stat.state === 'X' || stat.start !== owner.start;
}
