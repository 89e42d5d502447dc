"""The limiter's Redis layout and its Lua scripts: one round trip per request, on the Redis server's clock.

Layout (the only place limiter keys are named). Every key of one API key carries the hash tag
`{<key id>}`, so each script touches one Redis Cluster slot:

    <ns>:lim:{<id>}:rpm    hash v, t   requests_per_minute token bucket (level, last update)
    <ns>:lim:{<id>}:tpm    hash v, t   tokens_per_minute token bucket
    <ns>:lim:{<id>}:conc   zset        concurrency leases: member = lease id, score = expiry (server time)
    <ns>:lim:{<id>}:month  hash m, tok, usd   this UTC month's spend (m = yyyymm; usd in micro-USD)

Per-minute limits are token buckets refilled continuously (limit per 60 s, capacity = limit). A bucket
can go negative: a request that used more tokens than it reserved leaves a debt that later requests wait
out. Why a bucket and not a fixed or sliding window: reconciliation must credit and debit tokens after
the fact, which a bucket does at any time while a window that has rolled over cannot be corrected; and
its state is two numbers, not a log of every request.
"""

from __future__ import annotations

from dataclasses import dataclass

# Shared Lua pieces (the start of every script): the server's clock, UTC months (Howard Hinnant's
# days→civil), bucket refill and store.
PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function month_of(secs)
  local z = math.floor(secs / 86400) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y * 100 + m
end
local function level(key, cap)
  local st = redis.call('HMGET', key, 'v', 't')
  local v, ts = tonumber(st[1]), tonumber(st[2])
  if v == nil then return cap end
  v = v + (now - ts) * cap / 60
  if v > cap then v = cap end
  return v
end
local function store(key, cap, v)
  redis.call('HSET', key, 'v', v, 't', now)
  redis.call('PEXPIRE', key, math.ceil((cap - v) * 60000 / cap) + 60000)
end
local function remaining(v) if v < 0 then return 0 end return math.floor(v) end
local function reset_ms(v, cap) if v >= cap then return 0 end return math.ceil((cap - v) * 60000 / cap) end
"""

# KEYS: rpm, tpm, conc, month.
# ARGV: rpm, tpm, conc, month_tokens, month_micro_usd (0 = no limit), reserve_tokens, reserve_micro_usd,
#       lease_id, lease_ms, carry_requests, carry_tokens (into the bucket), carry_month_tokens,
#       carry_micro_usd (into the month), probe ('1': apply the carries only), month_ttl_s,
#       ask_requests, ask_tokens, ask_micro_usd, ask_slots, share, free slot ids given back…
# Carries are what this instance owes the shared counters, added once: what its fallback admitted while
# Redis was unreachable (positive), and the unused rest of an allowance it gives back (negative; a
# bucket never refills above its capacity). The free slots given back leave the concurrency set before
# the check. When the request is admitted, an allowance is taken on top of it (allowance.py): up to the
# ask of each limit, and never more than 1/share of what is left of it.
# Returns {status, retry_ms, month, requests_left, requests_reset_ms, tokens_left, tokens_reset_ms,
#          month_tokens, month_micro_usd, why, granted requests, tokens, month tokens, micro-USD, slots};
#          why: 1 concurrency, 2 requests, 4 tokens (bits); status 0 admitted, 1 over a rate (429),
#          2 over a budget (402), 3 this month's spend is not in Redis (seed it from Postgres, call again).
# Granted slots are named lease_id:1 … lease_id:n.
ADMIT = PRELUDE + """
local rpm, tpm, conc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local mtok, musd = tonumber(ARGV[4]), tonumber(ARGV[5])
local rtok, rusd = tonumber(ARGV[6]), tonumber(ARGV[7])
local probe = ARGV[14] == '1'
local month = month_of(now)
local budget = mtok > 0 or musd > 0
local mt, mu = 0, 0
if budget then
  local st = redis.call('HMGET', KEYS[4], 'm', 'tok', 'usd')
  if not st[1] then return {3, 0, month, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} end
  if tonumber(st[1]) == month then mt, mu = tonumber(st[2]), tonumber(st[3]) end
  mt, mu = mt + tonumber(ARGV[12]), mu + tonumber(ARGV[13])
end
local vr, vt = 0, 0
if rpm > 0 then vr = math.min(rpm, level(KEYS[1], rpm) - tonumber(ARGV[10])) end
if tpm > 0 then vt = math.min(tpm, level(KEYS[2], tpm) - tonumber(ARGV[11])) end
if mt < 0 then mt = 0 end
if mu < 0 then mu = 0 end
for i = 21, #ARGV do redis.call('ZREM', KEYS[3], ARGV[i]) end
local status, retry, why = 0, 0, 0
local gr, gt, gm, gu, gs = 0, 0, 0, 0, 0
if not probe then
  if (mtok > 0 and mt + rtok > mtok) or (musd > 0 and mu + rusd > musd) then status = 2 end
  if status == 0 and conc > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
    if redis.call('ZCARD', KEYS[3]) >= conc then status, retry, why = 1, 1000, 1 end
  end
  if status ~= 2 and rpm > 0 and vr < 1 then
    status, retry, why = 1, math.max(retry, math.ceil((1 - vr) * 60000 / rpm)), why + 2
  end
  local need = math.min(rtok, tpm)
  if status ~= 2 and tpm > 0 and vt < need then
    status, retry, why = 1, math.max(retry, math.ceil((need - vt) * 60000 / tpm)), why + 4
  end
  if status == 0 then
    vr, vt, mt, mu = vr - 1, vt - rtok, mt + rtok, mu + rusd
    local lease_ms, share = tonumber(ARGV[9]), tonumber(ARGV[20])
    if share > 0 then
      local function part(ask, left) return math.max(0, math.min(ask, math.floor(left / share))) end
      if rpm > 0 then gr = part(tonumber(ARGV[16]), vr) end
      if tpm > 0 then gt = part(tonumber(ARGV[17]), vt) end
      if mtok > 0 then gm = part(tonumber(ARGV[17]), mtok - mt) end
      if musd > 0 then gu = part(tonumber(ARGV[18]), musd - mu) end
      if conc > 0 then gs = part(tonumber(ARGV[19]), conc - 1 - redis.call('ZCARD', KEYS[3])) end
      vr, vt, mt, mu = vr - gr, vt - gt, mt + gm, mu + gu
    end
    if conc > 0 then
      redis.call('ZADD', KEYS[3], now + lease_ms / 1000, ARGV[8])
      for i = 1, gs do redis.call('ZADD', KEYS[3], now + lease_ms / 1000, ARGV[8] .. ':' .. i) end
      redis.call('PEXPIRE', KEYS[3], 2 * lease_ms)
    end
  end
end
if rpm > 0 then store(KEYS[1], rpm, vr) end
if tpm > 0 then store(KEYS[2], tpm, vt) end
if budget then
  redis.call('HSET', KEYS[4], 'm', month, 'tok', mt, 'usd', mu)
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[15]))
end
return {status, retry, month, remaining(vr), reset_ms(vr, rpm), remaining(vt), reset_ms(vt, tpm), mt, mu, why,
        gr, gt, gm, gu, gs}
"""

# KEYS: tpm, conc, month.  ARGV: tpm, token_delta, micro_usd_delta (metered minus reserved), lease_id,
# month (the month the reservation was made in: a reservation never corrects another month), more lease
# ids to free (an allowance's unused slots)…
SETTLE = PRELUDE + """
local tpm, d, du = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if tpm > 0 and d ~= 0 then
  local v = level(KEYS[1], tpm) - d
  if v > tpm then v = tpm end
  store(KEYS[1], tpm, v)
end
if ARGV[4] ~= '' then redis.call('ZREM', KEYS[2], ARGV[4]) end
for i = 6, #ARGV do redis.call('ZREM', KEYS[2], ARGV[i]) end
local st = redis.call('HMGET', KEYS[3], 'm', 'tok', 'usd')
if st[1] and st[1] == ARGV[5] then
  redis.call('HSET', KEYS[3], 'tok', tonumber(st[2]) + d, 'usd', tonumber(st[3]) + du)
end
return 1
"""

# KEYS: conc.  ARGV: lease_ms, lease ids…  Pushes the expiry of this instance's running leases forward.
RENEW = PRELUDE + """
local lease_ms = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', now + lease_ms / 1000, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], 2 * lease_ms)
return 1
"""

# KEYS: month.  ARGV: month (yyyymm), tokens, micro_usd, ttl_s.  Seeds this month's spend from Postgres
# when Redis does not have it; never overwrites a figure Redis already holds for that month.
SEED = PRELUDE + """
if month_of(now) ~= tonumber(ARGV[1]) then return 0 end
local m = redis.call('HGET', KEYS[1], 'm')
if m and tonumber(m) == tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'm', ARGV[1], 'tok', ARGV[2], 'usd', ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
"""


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """The Redis keys of one API key's counters."""

    rpm: str
    tpm: str
    conc: str
    month: str


def layout(namespace: str, key_id: str) -> KeyLayout:
    base = f"{namespace}:lim:{{{key_id}}}"
    return KeyLayout(rpm=f"{base}:rpm", tpm=f"{base}:tpm", conc=f"{base}:conc", month=f"{base}:month")
