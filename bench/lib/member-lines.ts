/** What bench/shutdown-member.ts, one member of a group, is told and says (bench/suites/shutdown-members.ts). */
import { LineProtocol } from '../../harness/process.js';

/** What the suite tells each member. */
export interface MemberConfig {
  readonly coordinator: 'postgres' | 'redis';
  /** The PostgreSQL schema of the host table, the store's tables and the PostgreSQL coordinator's. */
  readonly schema: string;
  /** The Redis coordinator's key prefix. */
  readonly keyPrefix: string;
  readonly group: string;
  readonly memberId: string;
}

/** A member's lines on stdout. */
export interface ShutdownMemberMessages {
  READY: { readonly memberId: string };
  REPORT: {
    readonly memberId: string;
    readonly handOff: string;
    readonly parked: number;
    /** From the SIGTERM to the report, in ms, as the member saw it. */
    readonly ms: number;
    readonly phases: readonly { readonly name: string; readonly durationMs: number }[];
    readonly errors: readonly string[];
  };
  FAILED: { readonly error: string };
}

/** A member's lines. */
export const shutdownMemberLines = new LineProtocol<ShutdownMemberMessages>(['READY', 'REPORT', 'FAILED']);
