/**
 * Who owns a lease or a membership row, precisely enough to tell at once that the owner's process is
 * gone without mistaking a reused pid for it. On Linux: the pid, its start time (field 22 of
 * `/proc/<pid>/stat`), and a scope (boot id and pid namespace) within which a pid means one thing.
 * Elsewhere, when `/proc` cannot be read, or when it is not this process's pid namespace's (a sandbox
 * that binds the host's `/proc`, `unshare --pid` without `--mount-proc`: `/proc/<pid>` there names
 * another process), no start time and no scope: the TTL alone decides.
 *
 * @internal
 */
import { readFileSync, readlinkSync } from 'node:fs';

/** The identity recorded with a row; `start` and `scope` are `null` when unknown. */
export interface ProcessIdentity {
  readonly pid: number;
  readonly start: string | null;
  readonly scope: string | null;
}

/** The fields of `/proc/<pid>/stat` read here, or `undefined` when the file cannot be read. */
function readStat(pid: number | 'self'): { state: string; start: string } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Field 2 (the command) is parenthesised and may itself hold spaces and parentheses.
  const [state, ...fields] = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const start = fields[18];
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

/**
 * Whether `/proc` shows this process's pid namespace: `/proc/self` names this process by the pid it
 * knows. Else `/proc/<pid>` would be read about some other process, alive or a zombie, of that `/proc`.
 */
function procIsOurs(): boolean {
  try {
    return readlinkSync('/proc/self') === String(process.pid);
  } catch {
    return false;
  }
}

let self: ProcessIdentity | undefined;

/** This process's identity (computed once). */
export function selfIdentity(): ProcessIdentity {
  if (self === undefined) {
    const scope = process.platform === 'linux' && procIsOurs() ? readScope() : null;
    const start = scope === null ? undefined : readStat('self')?.start;
    self = { pid: process.pid, start: start ?? null, scope: start === undefined ? null : scope };
  }
  return self;
}

/**
 * Whether the process that recorded `owner` is certainly gone: it no longer exists, is a zombie, or
 * its pid belongs to a process started at another time. `false` when it cannot be told.
 */
export function isGone(owner: ProcessIdentity): boolean {
  const mine = selfIdentity();
  if (owner.scope === null || owner.start === null || owner.scope !== mine.scope) return false;
  if (owner.pid === mine.pid) return owner.start !== mine.start;
  if (!Number.isSafeInteger(owner.pid) || owner.pid <= 0) return false;
  // kill(pid, 0) is the authority on existence (/proc may hide other users' processes); EPERM: it exists.
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return true;
  }
  const stat = readStat(owner.pid);
  if (stat === undefined) return false;
  return stat.state === 'Z' || stat.state === 'X' || stat.start !== owner.start;
}
