/** What a check found, and how to build one. */

/** One breach of an invariant: what, when (shared clock), and who was involved. */
export interface Violation {
  readonly message: string;
  readonly at: number;
  readonly members: readonly string[];
}

/** The result of one check. */
export interface CheckResult {
  /** What is checked, in a few words. */
  readonly name: string;
  /** The invariant of DESIGN.md it checks (`1` to `9`), or what else. */
  readonly invariant: string;
  readonly ok: boolean;
  /** A one-line account of what was found when it held. */
  readonly detail: string;
  readonly violations: readonly Violation[];
  /** What held only thanks to an allowance (a crash, a killed session), said out loud. */
  readonly notes: readonly string[];
}

/** A check from its violations: ok when there are none. */
export function check(
  name: string,
  invariant: string,
  violations: readonly Violation[],
  detail: string,
  notes: readonly string[] = [],
): CheckResult {
  return { name, invariant, ok: violations.length === 0, detail, violations, notes };
}
