/**
 * The key layout and the Lua scripts. Every key of one lock, and every key of one group, carries the
 * same hash tag (`{...}`), so each script runs atomically on the server and touches a single Redis
 * Cluster slot, while different locks and groups spread over the slots. Membership expiry is judged
 * on the server's clock (`TIME`), never ours.
 * Scripts are always sent with `EVAL` (the server caches them): `EVALSHA` would need a second send on
 * `NOSCRIPT`, which could land after a release we queued behind the first one.
 *
 * @internal
 */

/** The keys of one lock: who holds it, and its fencing counter. @internal */
export interface LockKeys {
  /** A string holding the owner id of the current holder, with the lease's TTL. */
  readonly owner: string;
  /** An integer incremented by every successful acquisition; it never expires. */
  readonly fence: string;
}

/** The keys of one group: member ids scored by expiry, and their incarnations. @internal */
export interface GroupKeys {
  /** A sorted set: each member id scored by its expiry, in milliseconds on the server's clock. */
  readonly members: string;
  /** A hash: each member id to `<incarnation>|<ttlMs>`. */
  readonly info: string;
}

/** `{<prefix>lock:<name>}:owner` and `{<prefix>lock:<name>}:fence`. @internal */
export function lockKeys(prefix: string, name: string): LockKeys {
  const tag = `{${prefix}lock:${name}}`;
  return { owner: `${tag}:owner`, fence: `${tag}:fence` };
}

/** `{<prefix>group:<name>}:members` and `{<prefix>group:<name>}:info`. @internal */
export function groupKeys(prefix: string, group: string): GroupKeys {
  const tag = `{${prefix}group:${group}}`;
  return { members: `${tag}:members`, info: `${tag}:info` };
}

/** The record a member's hash field holds, compared verbatim by the scripts. @internal */
export function memberRecord(incarnation: string, ttlMs: number): string {
  return `${incarnation}|${ttlMs}`;
}

/** Splits a member record; `undefined` parts when it is not one of ours. @internal */
export function parseMemberRecord(record: string): { incarnation: string; ttlMs: number | undefined } {
  const bar = record.lastIndexOf('|');
  if (bar < 0) return { incarnation: record, ttlMs: undefined };
  const ttlMs = Number(record.slice(bar + 1));
  return { incarnation: record.slice(0, bar), ttlMs: Number.isFinite(ttlMs) ? ttlMs : undefined };
}

/** A script and the number of its keys. @internal */
export interface Script {
  readonly keys: number;
  readonly lua: string;
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
 * KEYS: owner, fence. ARGV: owner id, ttl ms.
 * Returns the fencing token (a string) when taken, else the holder's remaining TTL in ms (a number).
 */
export const ACQUIRE: Script = {
  keys: 2,
  lua: `
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('PTTL', KEYS[1])
end
redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('GET', KEYS[2])
`,
};

/** KEYS: owner. ARGV: owner id, ttl ms. Returns 1 when renewed, 0 when the lock is not ours. */
export const RENEW: Script = {
  keys: 1,
  lua: `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`,
};

/** KEYS: owner. ARGV: owner id. Returns 1 when deleted, 0 when the lock was not ours. */
export const RELEASE: Script = {
  keys: 1,
  lua: `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`,
};

/** KEYS: members, info. ARGV: member id, record, ttl ms. Adds or replaces the member. Returns 1. */
export const JOIN: Script = {
  keys: 2,
  lua: `${PREAMBLE}${EXTEND_GROUP}
redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
extend_group()
return 1
`,
};

/**
 * KEYS: members, info. ARGV: member id, record, ttl ms.
 * Extends the member only while it is present, unexpired, and of this incarnation: returns 1, else 0
 * (and removes it when it is ours but expired). A lost member is never re-added.
 */
export const HEARTBEAT: Script = {
  keys: 2,
  lua: `${PREAMBLE}${EXTEND_GROUP}
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return 0
end
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
`,
};

/** KEYS: members, info. ARGV: member id, record. Removes the member if it is this incarnation. */
export const LEAVE: Script = {
  keys: 2,
  lua: `
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
`,
};

/**
 * KEYS: members, info. Removes the expired members, then returns the live ones as a flat list of
 * triples: member id, ms until expiry (server clock), record.
 */
export const MEMBERS: Script = {
  keys: 2,
  lua: `${PREAMBLE}
local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, member in ipairs(expired) do
  redis.call('HDEL', KEYS[2], member)
end
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
end
local live = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #live, 2 do
  out[#out + 1] = live[i]
  out[#out + 1] = tonumber(live[i + 1]) - now
  out[#out + 1] = redis.call('HGET', KEYS[2], live[i]) or ''
end
return out
`,
};
