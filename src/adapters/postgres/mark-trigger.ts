/**
 * The trigger that ties a parked-by-shutdown mark to the pause it created: see "The mark trigger" in
 * docs/adapters/postgres.md. Everything its DDL depends on is hashed into a fingerprint kept in the
 * triggers' argument and the function's body: a set with another fingerprint is replaced.
 *
 * @internal
 */
import { createHash } from 'node:crypto';
import { advisoryKey, literal, quote } from '../../internal/sql-names.js';
import type { HostTable } from './options.js';
import { type TableInfo, UNPARKING } from './store-sql.js';

/** Bumped whenever the DDL below changes, so that triggers made by an older release are replaced. */
const DDL_VERSION = 1;
/** How long the install waits for the lock on the host's table before giving up (writers queue behind it). */
const LOCK_TIMEOUT_MS = 2000;

function hash(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\0')).digest('hex');
}

/**
 * The trigger set of a store over `host`, with its marks in `schema`: `checkSql` (one row, `current`:
 * in place, enabled and current) and `installSql` (one `DO` block, installing or replacing it).
 */
export function markTrigger(
  schema: string,
  host: HostTable,
  info: TableInfo,
): { readonly checkSql: string; readonly installSql: string } {
  const S = quote(schema);
  // The catalog's spelling: stores naming the table `wf` and `public.wf` install the same trigger set.
  const T = info.qualified;
  const ID = quote(host.idColumn);
  const ST = quote(host.statusColumn);
  const { pausing, paused } = host.statuses;
  // One trigger set per marks schema on a table: stores with other schemas keep their own.
  const base = `graceful_drain_${hash(schema).slice(0, 12)}`;
  const updateTrigger = `${base}_upd`;
  const deleteTrigger = `${base}_del`;
  const functionSql = `${S}.${quote(`drop_mark_${hash(info.storeKey).slice(0, 16)}`)}`;
  const held = [pausing, paused].flatMap((v) => (v === undefined ? [] : [literal(v)])).join(', ');
  const body = (fingerprint: string): string => `
BEGIN
  -- graceful-drain ${fingerprint}: the pause this mark belonged to is over.
  DELETE FROM ${S}.parked
  WHERE store_key = ${literal(info.storeKey)} AND workflow_id = (OLD.${ID}::text COLLATE "C");
  RETURN NULL;
END`;
  const asId = `(p.workflow_id)::${info.idType}${info.idCollation === undefined ? '' : ` COLLATE ${info.idCollation}`}`;
  // The store's unpark skips the call for the rows its own statement resumes (it deletes their marks), not
  // for rows a trigger of the host's changes in cascade: those are queued at a trigger depth above 0.
  const updateWhen =
    `(OLD.${ST}::text IN (${held})) AND (NEW.${ST}::text IN (${held})) IS NOT TRUE ` +
    `AND (current_setting(${literal(UNPARKING)}, true) IS DISTINCT FROM 'on' OR pg_trigger_depth() > 0)`;
  const deleteWhen = `OLD.${ST}::text IN (${held})`;
  const parts = [String(DDL_VERSION), schema, T, info.storeKey, ID, ST, body(''), updateWhen, deleteWhen];
  const fingerprint = hash(...parts).slice(0, 32);
  const createFunction = `CREATE OR REPLACE FUNCTION ${functionSql}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS ${literal(body(fingerprint))}`;
  const trigger = (replace: boolean, name: string, event: string, when: string): string =>
    `CREATE ${replace ? 'OR REPLACE ' : ''}TRIGGER ${quote(name)} AFTER ${event} ON ${T} FOR EACH ROW ` +
    `WHEN (${when}) EXECUTE FUNCTION ${functionSql}(${literal(fingerprint)})`;
  const checkSql = `SELECT count(*) = 2 AS current FROM pg_trigger tg JOIN pg_proc p ON p.oid = tg.tgfoid
    WHERE tg.tgrelid = ${literal(T)}::regclass AND tg.tgname IN (${literal(updateTrigger)}, ${literal(deleteTrigger)})
      AND tg.tgenabled <> 'D' AND position(${literal(fingerprint)} IN p.prosrc) > 0
      AND position(convert_to(${literal(fingerprint)}, 'UTF8') IN tg.tgargs) > 0`;
  const installSql = `DO ${literal(`
BEGIN
  -- Every replica may get here at once: the later ones wait for the first, and find the work done.
  PERFORM pg_advisory_xact_lock(${advisoryKey(schema, 'mark-trigger', info.storeKey)});
  -- Writers of the host's table queue behind a lock we wait for: wait little.
  PERFORM set_config('lock_timeout', '${LOCK_TIMEOUT_MS}ms', true);
  IF NOT (${checkSql}) THEN
    EXECUTE ${literal(createFunction)};
    IF current_setting('server_version_num')::int >= 140000 THEN
      EXECUTE ${literal(trigger(true, updateTrigger, 'UPDATE', updateWhen))};
      EXECUTE ${literal(trigger(true, deleteTrigger, 'DELETE', deleteWhen))};
    ELSE
      EXECUTE ${literal(`DROP TRIGGER IF EXISTS ${quote(updateTrigger)} ON ${T}`)};
      EXECUTE ${literal(`DROP TRIGGER IF EXISTS ${quote(deleteTrigger)} ON ${T}`)};
      EXECUTE ${literal(trigger(false, updateTrigger, 'UPDATE', updateWhen))};
      EXECUTE ${literal(trigger(false, deleteTrigger, 'DELETE', deleteWhen))};
    END IF;
    -- Marks now exist only on pausing or paused rows: drop the others' (resumed before the trigger
    -- existed), by id through the host's index, while the lock above holds the host's writers.
    DELETE FROM ${S}.parked p
    WHERE p.store_key = ${literal(info.storeKey)}
      AND NOT EXISTS (SELECT 1 FROM ${T} t
        WHERE t.${ID} = ${asId} AND t.${ST}::text IN (${held}));
  END IF;
END`)}`;
  return { checkSql, installSql };
}
