/**
 * What the host's database says happened, against the history (invariant 1): the demo's audit trigger
 * writes a row for every status change, whoever makes it, stamped with the database's clock. Every
 * entry into a pause (`running` -> `pausing`/`paused`) and every exit from one (`pausing`/`paused` ->
 * `running`) was made by the user (matched by its status-log row) or by a park or unpark of a member
 * that included the workflow; and none landed behind a newer lock holder's back: after a fence raised
 * to a higher token (or a write under one) had completed.
 *
 * That is the hole of the delayed write: a park the shutdown gave up on (its store call aborted), or one
 * delayed in flight, that commits after the next member has looked. A write that lands after its member
 * heard it fail, but before any newer holder raised the fence, is harmless (the next holder sees it):
 * it is noted, not reported.
 *
 * The database's clock and the history's are the same machine's wall clock, read apart: a change counts
 * as in a write's span, or after a fence, only with {@link SLACK_MS} to spare.
 */
import type { HostSnapshot } from '../../harness/host-db.js';
import { check, type CheckResult, type Violation } from './check-result.js';
import type { Model, WriteModel } from './model.js';

/** How far apart the database's clock and the history's may read, in ms. */
export const SLACK_MS = 100;

const PAUSED = new Set(['paused', 'pausing']);

/** A completed act of a lock holder under `token`, after which no lower token may land. */
interface Fenced {
  readonly member: string;
  readonly token: bigint;
  readonly at: number;
  readonly what: string;
}

/** Invariant 1, from the host's audit log: no park or resume lands behind a newer lock holder. */
export function checkLandings(model: Model, snapshot: HostSnapshot): CheckResult {
  const violations: Violation[] = [];
  const notes: string[] = [];
  const userRows = new Set(
    model.history.flatMap((e) =>
      // A pause of a parked workflow changes no status: its row is the park's.
      (e.type === 'user-pause' && e.how !== 'parked' && e.statusSeq !== undefined) || e.type === 'user-resume'
        ? [`${e.id}#${e.statusSeq}`]
        : [],
    ),
  );
  const writes = new Map<string, WriteModel[]>();
  for (const w of model.writes) {
    for (const id of w.ids) writes.set(`${w.kind}#${id}`, [...(writes.get(`${w.kind}#${id}`) ?? []), w]);
  }
  const fenced: Fenced[] = [
    ...model.fences.flatMap((f) =>
      f.token !== null && f.end !== undefined && f.error === undefined
        ? [{ member: f.member, token: f.token, at: f.end, what: 'raised the fence' }]
        : [],
    ),
    ...model.writes.flatMap((w) =>
      w.token !== null && w.end !== undefined && w.outcomes !== undefined
        ? [{ member: w.member, token: w.token, at: w.end, what: `had a ${w.name} accepted` }]
        : [],
    ),
  ];
  const fmt = (t: number): string => `${((t - model.origin) / 1000).toFixed(3)}s`;
  const counts = { user: 0, inFlight: 0, late: 0 };
  for (const row of snapshot.statusLog) {
    const entry = row.from === 'running' && PAUSED.has(row.to);
    const exit = PAUSED.has(row.from) && row.to === 'running';
    if (!entry && !exit) continue;
    if (userRows.has(`${row.workflowId}#${row.seq}`)) {
      counts.user++;
      continue;
    }
    const kind = entry ? 'park' : 'unpark';
    const change = `${row.workflowId} ${row.from} -> ${row.to} at ${fmt(row.at)} (database clock)`;
    const sent = (writes.get(`${kind}#${row.workflowId}`) ?? []).filter((w) => w.start - SLACK_MS <= row.at);
    if (sent.length === 0) {
      violations.push({ message: `${change}: no user and no ${kind} made it`, at: row.at, members: [] });
      continue;
    }
    // The most lenient reading: of the writes that may have made it, the one with the highest token.
    const inFlight = sent.filter((w) => row.at <= (w.end ?? Infinity) + SLACK_MS);
    const candidates = inFlight.length > 0 ? inFlight : sent;
    const by = candidates.reduce((a, b) => ((b.token ?? -1n) > (a.token ?? -1n) ? b : a));
    const token = by.token ?? -1n;
    const late = inFlight.length === 0;
    if (late) counts.late++;
    else counts.inFlight++;
    const behind = fenced.find((f) => f.token > token && f.at + SLACK_MS < row.at);
    const write = `${by.name} by ${by.member} (token ${by.token}, sent at ${fmt(by.start)}${
      by.end === undefined
        ? ', cut short'
        : `, ${by.outcomes === undefined ? `failed (${by.error?.message ?? '?'})` : 'answered'} at ${fmt(by.end)}`
    })`;
    if (behind !== undefined) {
      violations.push({
        message: `${change}, by the ${write}, landed after ${behind.member} ${behind.what} under token ${behind.token} at ${fmt(behind.at)}`,
        at: row.at,
        members: [by.member, behind.member],
      });
    } else if (late) {
      notes.push(
        `${change}: the ${write} landed after its member heard of it, before any newer holder looked`,
      );
    }
  }
  // What the faults did to the writes: the host locks members took, the writes given up.
  const locks = model.faults.filter(
    (f) => f.kind === 'host-lock-at-park' || f.kind === 'host-lock-at-resume',
  );
  const failed = new Map<string, number>();
  for (const w of model.writes) {
    if (w.error === undefined) continue;
    const key = `${w.name} ${w.error.name}`;
    failed.set(key, (failed.get(key) ?? 0) + 1);
  }
  const givenUp = [...failed].map(([k, n]) => `${k} ${n}`).join(', ');
  return check(
    'every pause and resume the database saw was sent, none landed behind a newer holder',
    '1',
    violations,
    `${counts.user + counts.inFlight + counts.late} pauses and resumes in the audit log: ${counts.user} by the user, ` +
      `${counts.inFlight} within a member's write, ${counts.late} after it; none after a higher token's fence ` +
      `(${locks.length} host locks taken; writes that failed: ${givenUp || 'none'})`,
    notes,
  );
}
