/**
 * The key layout and the Lua scripts (see docs/adapters/redis.md). The keys of one lock, or of one group,
 * share a hash tag, so each script is atomic and touches one Cluster slot. A script goes out with `EVAL`
 * the first time on a connection, then with `EVALSHA` (see `RedisSession.eval`); a `NOSCRIPT` answer is
 * never resent blindly, since a resend could land after a release queued behind the first.
 *
 * @internal
 */

/**
 * A lock's `owner` key (the holder's owner id, with the lease's TTL) and `fence` key (its counter), as the
 * KEYS of its scripts: `acquire` (owner, fence), and `owner` alone (renew, release).
 */
export function lockKeys(
  prefix: string,
  name: string,
): { readonly acquire: readonly [owner: string, fence: string]; readonly owner: readonly [owner: string] } {
  const tag = `{${prefix}lock:${name}}`;
  const owner = `${tag}:owner`;
  return { acquire: [owner, `${tag}:fence`], owner: [owner] };
}

/** A group's `members` key (ids scored by expiry, server clock) and `info` key (id to member record). */
export function groupKeys(prefix: string, group: string): readonly [members: string, info: string] {
  const tag = `{${prefix}group:${group}}`;
  return [`${tag}:members`, `${tag}:info`];
}

export type LockKeys = ReturnType<typeof lockKeys>;
export type GroupKeys = ReturnType<typeof groupKeys>;

/** A member's record in `info`, compared verbatim by the scripts. */
export function memberRecord(incarnation: string, ttlMs: number): string {
  return `${incarnation}|${ttlMs}`;
}

/** Splits a member record; `ttlMs` is `undefined` when it is not one of ours. */
export function parseMemberRecord(record: string): { incarnation: string; ttlMs: number | undefined } {
  const bar = record.lastIndexOf('|');
  if (bar < 0) return { incarnation: record, ttlMs: undefined };
  const ttlMs = Number(record.slice(bar + 1));
  return { incarnation: record.slice(0, bar), ttlMs: Number.isFinite(ttlMs) ? ttlMs : undefined };
}

// Scripts that read TIME and then write need effects replication (the default from Redis 5 on).
const PREAMBLE = `
if redis.replicate_commands then redis.replicate_commands() end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

// A group's keys live as long as its newest member, so an abandoned group vanishes on its own.
const EXTEND_GROUP = `
local function extend_group()
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if newest[2] then
    redis.call('PEXPIREAT', KEYS[1], newest[2])
    redis.call('PEXPIREAT', KEYS[2], newest[2])
  end
end
`;

/**
 * KEYS: owner, fence. ARGV: owner id, ttl ms. The token (a string) when taken, else the holder's PTTL. The
 * token is read back with GET: Lua holds INCR's answer as a double, exact only up to 2^53.
 */
export const ACQUIRE = `
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return redis.call('PTTL', KEYS[1]) end
redis.call('INCR', KEYS[2])
return redis.call('GET', KEYS[2])
`;

/** KEYS: owner. ARGV: owner id, ttl ms. 1 when renewed, 0 when the lock is not ours. */
export const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

/** KEYS: owner. ARGV: owner id. 1 when deleted, 0 when the lock was not ours. */
export const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`;

/** KEYS: members, info. ARGV: member id, record, ttl ms. Adds or replaces the member; 1. */
export const JOIN = `${PREAMBLE}${EXTEND_GROUP}
redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
extend_group()
return 1
`;

/** KEYS: members, info. ARGV: member id, record, ttl ms. 1 when extended; a lost member is never re-added. */
export const HEARTBEAT = `${PREAMBLE}${EXTEND_GROUP}
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
local now = now_ms()
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[3]), ARGV[1])
extend_group()
return 1
`;

/** KEYS: members, info. ARGV: member id, record. Removes the member if it is this incarnation (1), else 0. */
export const LEAVE = `
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`;

/** KEYS: members, info. Removes the expired members; the live ones as triples: id, ms to expiry, record. */
export const MEMBERS = `${PREAMBLE}
local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, member in ipairs(expired) do redis.call('HDEL', KEYS[2], member) end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) end
local live = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #live, 2 do
  out[#out + 1] = live[i]
  out[#out + 1] = tonumber(live[i + 1]) - now
  out[#out + 1] = redis.call('HGET', KEYS[2], live[i]) or ''
end
return out
`;
