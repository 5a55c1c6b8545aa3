"""Lua scripts that change a task's state atomically in Redis.

Why scripts: a checkpoint, its progress event, the tree's usage counters and (at the end) the
stream acknowledgement must happen together or not at all, and each must be refused when the
caller no longer holds the task's lease (a fencing token: a worker that stalled past the
visibility timeout must not overwrite the worker that took over). Scripts are also idempotent
per step number, so a client retry after a dropped connection never appends a step twice.

Return conventions: a table whose first element is a status; -1 means "lease lost".
"""

from __future__ import annotations

from agentfleet_contract.fleet_stats import FINISHED_CAP, FINISHED_WINDOW_SECONDS
from agentfleet_contract.runtime_config import GATE_TENANT

# Finished-task record (stats.py): one hour, bounded so a burst cannot grow it without limit.

PRELUDE = r"""
local function is_terminal(s) return s == 'done' or s == 'cancelled' or s == 'dead' end

local function ack(stream, group, msg_id)
  if msg_id ~= '' then
    redis.call('XACK', stream, group, msg_id)
    redis.call('XDEL', stream, msg_id)
  end
end

-- A finished root task's duration and cost, for the fleet's hourly statistics (stats.py). The
-- key is the stream's sibling (af:<fleet>:tasks -> af:<fleet>:finished, keys.Keys.finished);
-- the set keeps one hour and at most FINISHED_CAP entries so it stays bounded at any rate.
local function record_finished(k, id, a)
  local now = tonumber(a.now)
  local f = redis.call('HMGET', k.hash, 'created_at', 'tree_cost_nanos', 'cost_nanos')
  local created = tonumber(f[1] or '') or now
  local cost = tonumber(f[2] or '') or tonumber(f[3] or '') or 0
  local key = string.sub(k.stream, 1, -6) .. 'finished'
  local member = id .. '|' .. string.format('%.3f', math.max(0, now - created))
    .. '|' .. string.format('%d', cost) .. '|' .. a.status
  redis.call('ZADD', key, now, member)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. string.format('%.3f', now - __WINDOW__))
  local n = redis.call('ZCARD', key)
  if n > __CAP__ then redis.call('ZREMRANGEBYRANK', key, 0, n - __CAP__ - 1) end
end

-- End a task. k = {hash, steps, events, children, stream, dead}; a = table of strings.
local function finish(k, id, a)
  redis.call('HSET', k.hash, 'status', a.status, 'reason', a.reason, 'answer', a.answer,
             'error', a.error, 'finished_at', a.now, 'lease', '')
  -- The spend SUBMIT reserved for it is released: what it cost is in the day's spend by now.
  local rk = redis.call('HGET', k.hash, 'reserve_key')
  if rk and rk ~= '' then
    local held = redis.call('HGET', rk, id)
    if held then
      redis.call('HDEL', rk, id)
      redis.call('HINCRBY', rk, '_total', -tonumber(held))
    end
  end
  ack(k.stream, a.group, a.msg_id)
  redis.call('XADD', k.events, 'MAXLEN', '~', 2000, '*', 'e', a.event)
  if a.status == 'dead' then
    redis.call('XADD', k.dead, 'MAXLEN', '~', 100000, '*', 'task', id, 'error', a.error, 'at', a.now)
  end
  -- Only a parent waits on a task's end; the channel wakes its fan-in without polling.
  if (redis.call('HGET', k.hash, 'parent') or '') ~= '' then
    redis.call('PUBLISH', a.channel, id)
  else
    record_finished(k, id, a)
  end
  local ttl = tonumber(a.ttl)
  for _, key in ipairs({k.hash, k.steps, k.events, k.children}) do redis.call('EXPIRE', key, ttl) end
end

-- Append step n unless already there (a retried call). Returns false on a gap.
local function append_step(hash, steps, root, n, step_json, pt, ct, cost)
  local len = redis.call('LLEN', steps)
  if len == n then
    redis.call('RPUSH', steps, step_json)
    redis.call('HINCRBY', hash, 'prompt_tokens', pt)
    redis.call('HINCRBY', hash, 'completion_tokens', ct)
    redis.call('HINCRBY', hash, 'cost_nanos', cost)
    if redis.call('EXISTS', root) == 1 then
      redis.call('HINCRBY', root, 'tree_tokens', pt + ct)
      redis.call('HINCRBY', root, 'tree_cost_nanos', cost)
    end
    return true
  end
  return len == n + 1
end
"""
PRELUDE = PRELUDE.replace("__WINDOW__", str(FINISHED_WINDOW_SECONDS)).replace("__CAP__", str(FINISHED_CAP))

# GCRA, the token bucket of routing/ratelimit.py: a bucket is one number, its theoretical arrival
# time (TAT, in ms on Redis' clock). A charge of `cost` tokens moves it to max(TAT, now) +
# cost/rate and may start once that lies within one bucket (burst/rate) of now. gcra returns the
# new TAT and the wait in ms (<= 0: none) without writing. One definition for the limiter's
# RESERVE and SUBMIT's admission, so a submission is judged by the bucket the calls use.
GCRA = r"""
local function redis_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end

local function gcra(key, now, cost, rate, burst)
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local new = tat + cost / rate
  return new, new - burst / rate - now, (tat - now) * rate
end
"""

# KEYS: hash stream events submission session parent_children tenant_live tenant_spend tenant_reserved
#       bucket... [tenant_tasks]
# ARGV: id submission_ttl event max_in_flight max_spend_nanos key_prefix need_tokens n_buckets reserve_nanos
#       (rate burst) x n_buckets field value ...
# Admission (a root task of a tenant, tenant_live given): the tenant's live set is pruned of tasks
# that ended, then {-1, live} if it holds max_in_flight (0: no limit), {-2, "spent reserved want"}
# if the day's spend, the spend reserved by the tenant's live tasks and this task's reserve_nanos
# (its maxCost) would pass max_spend_nanos (0: no limit; admitted, the task's reservation is held
# in tenant_reserved until finish() releases it), {-3, "wait_ms used_tokens bucket"} if one of the
# tenant's token buckets (KEYS[9..], GCRA) lacks room for need_tokens now. Nothing is charged to a
# bucket here: the task's model calls charge it. A repeated Idempotency-Key answers before any of
# these: the task it names was admitted already.
# The newest root tasks of one tenant A2A's ListTasks can page through (Keys.tenant_tasks).
MAX_LISTED = 10_000

SUBMIT = (
    PRELUDE
    + GCRA
    + r"""
if KEYS[4] ~= '' then
  local existing = redis.call('GET', KEYS[4])
  if existing then return {0, existing} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, ARGV[1]} end
local n_buckets = tonumber(ARGV[8])
if KEYS[7] ~= '' then
  local cap = tonumber(ARGV[4])
  if cap > 0 then
    local live = 0
    for _, id in ipairs(redis.call('SMEMBERS', KEYS[7])) do
      local status = redis.call('HGET', ARGV[6] .. 't:' .. id, 'status')
      if (not status) or is_terminal(status) then redis.call('SREM', KEYS[7], id) else live = live + 1 end
    end
    if live >= cap then return {-1, tostring(live)} end
  end
  local max_spend = tonumber(ARGV[5])
  if max_spend > 0 then
    local spent = tonumber(redis.call('GET', KEYS[8]) or '0')
    local reserved = tonumber(redis.call('HGET', KEYS[9], '_total') or '0')
    local want = tonumber(ARGV[9])
    if spent + reserved + want > max_spend or spent >= max_spend then
      return {-2, string.format('%d %d %d', spent, reserved, want)}
    end
  end
  local need = tonumber(ARGV[7])
  if need > 0 and n_buckets > 0 then
    local now = redis_now_ms()
    for i = 1, n_buckets do
      local _, wait, used = gcra(KEYS[9 + i], now, need, tonumber(ARGV[8 + 2 * i]), tonumber(ARGV[9 + 2 * i]))
      if wait > 0 then
        return {-3, string.format('%d %d %d', math.ceil(wait), math.floor(used + 0.5), i)}
      end
    end
  end
end
local fields = {}
for i = 10 + 2 * n_buckets, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
if KEYS[9] ~= '' and tonumber(ARGV[5]) > 0 and tonumber(ARGV[9]) > 0 then
  redis.call('HSET', KEYS[9], ARGV[1], ARGV[9])
  redis.call('HINCRBY', KEYS[9], '_total', tonumber(ARGV[9]))
  redis.call('EXPIRE', KEYS[9], 172800)
  redis.call('HSET', KEYS[1], 'reserve_key', KEYS[9])
end
redis.call('XADD', KEYS[2], '*', 'task', ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 2000, '*', 'e', ARGV[3])
if KEYS[4] ~= '' then redis.call('SET', KEYS[4], ARGV[1], 'EX', tonumber(ARGV[2])) end
if KEYS[5] ~= '' then
  redis.call('RPUSH', KEYS[5], ARGV[1])
  redis.call('LTRIM', KEYS[5], -200, -1)
  redis.call('EXPIRE', KEYS[5], tonumber(ARGV[2]))
end
if KEYS[6] ~= '' then redis.call('RPUSH', KEYS[6], ARGV[1]) end
if KEYS[7] ~= '' and tonumber(ARGV[4]) > 0 then
  redis.call('SADD', KEYS[7], ARGV[1])
  redis.call('EXPIRE', KEYS[7], tonumber(ARGV[2]))
end
-- The tenant's index of root tasks (Keys.tenant_tasks), the optional key after the buckets: newest
-- by server time, older than the records' TTL dropped, at most MAX_LISTED kept.
local listed = KEYS[10 + n_buckets]
if listed and listed ~= '' then
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', listed, now_ms, ARGV[1])
  redis.call('ZREMRANGEBYSCORE', listed, '-inf', '(' .. (now_ms - tonumber(ARGV[2]) * 1000))
  redis.call('ZREMRANGEBYRANK', listed, 0, -("""
    + str(MAX_LISTED + 1)
    + r"""))
  redis.call('EXPIRE', listed, tonumber(ARGV[2]))
end
return {1, ARGV[1]}
"""
)

# KEYS: hash steps events children stream dead
# ARGV: lease now reclaimed max_attempts msg_id group channel ttl worker started_event dead_event key_prefix
# The root's hash is read by a key built here (prefix .. "t:" .. root): the task's own hash names
# its root, and one round trip instead of two matters when a worker picks up hundreds of tasks.
ACQUIRE = (
    PRELUDE
    + r"""
local status = redis.call('HGET', KEYS[1], 'status')
if not status then ack(KEYS[5], ARGV[6], ARGV[5]); return {'missing'} end
if is_terminal(status) then ack(KEYS[5], ARGV[6], ARGV[5]); return {'terminal'} end
-- Parked for an approval (approvals.py): the decision puts it back on the stream.
if status == 'awaiting_approval' then ack(KEYS[5], ARGV[6], ARGV[5]); return {'awaiting_approval'} end
local id = redis.call('HGET', KEYS[1], 'id')
if ARGV[3] == '1' then
  local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  local err = 'worker lost: no heartbeat within the visibility timeout'
  redis.call('HSET', KEYS[1], 'error', err)
  if failures >= tonumber(ARGV[4]) then
    local k = {hash=KEYS[1], steps=KEYS[2], events=KEYS[3], children=KEYS[4], stream=KEYS[5], dead=KEYS[6]}
    finish(k, id, {status='dead', reason='failed', answer=redis.call('HGET', KEYS[1], 'answer') or '', error=err,
                   now=ARGV[2], msg_id=ARGV[5], group=ARGV[6], channel=ARGV[7], ttl=ARGV[8], event=ARGV[11]})
    return {'dead'}
  end
end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'lease', ARGV[1], 'status', 'running', 'worker', ARGV[9])
if tonumber(redis.call('HGET', KEYS[1], 'started_at') or '0') == 0 then
  redis.call('HSET', KEYS[1], 'started_at', ARGV[2])
  -- An evaluation gate's task is timed from its pickup, not its submission (issue 76): the time
  -- it waited behind others is no part of what the gate measures of either version.
  local g = redis.call('HMGET', KEYS[1], 'tenant', 'parent', 'created_at', 'deadline')
  if g[1] == '"""
    + GATE_TENANT
    + r"""' and (g[2] or '') == '' then
    local waited = tonumber(ARGV[2]) - (tonumber(g[3] or '') or tonumber(ARGV[2]))
    local deadline = tonumber(g[4] or '')
    if waited > 0 and deadline then
      redis.call('HSET', KEYS[1], 'deadline', string.format('%.6f', deadline + waited))
    end
  end
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 2000, '*', 'e', ARGV[10])
local root_key = ARGV[12] .. 't:' .. (redis.call('HGET', KEYS[1], 'root') or id)
return {'ok', redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1),
        redis.call('HMGET', root_key, 'limits', 'deadline', 'tree_tokens', 'tree_cost_nanos')}
"""
)

# KEYS: hash steps events root (the tenant's day was charged at the call: model/spend.py)
# ARGV: lease n step_json prompt_tokens completion_tokens cost_nanos event [observations_event]
# With the optional last event, step_json already holds the step's observations (its tools
# answered before the reply left: TaskStore.fold_observations): reply and completion in one call.
# On the hot path (every step of every task): no PRELUDE (its functions are closures built on
# every run), and each read once (lease and cancel flag together, the steps' length once). The
# tree usage is read back as strings (HMGET), not taken from HINCRBY's replies: those become Lua
# numbers (doubles), which would print large counters inexactly.
SAVE_REPLY = r"""
local h = redis.call('HMGET', KEYS[1], 'lease', 'cancel')
if h[1] ~= ARGV[1] then return {-1} end
local n = tonumber(ARGV[2])
local len = redis.call('LLEN', KEYS[2])
if len == n then
  local pt, ct, cost = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('HINCRBY', KEYS[1], 'prompt_tokens', pt)
  redis.call('HINCRBY', KEYS[1], 'completion_tokens', ct)
  redis.call('HINCRBY', KEYS[1], 'cost_nanos', cost)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', 2000, '*', 'e', ARGV[7])
  if ARGV[8] then redis.call('XADD', KEYS[3], 'MAXLEN', '~', 2000, '*', 'e', ARGV[8]) end
  -- A root task's tree counters are in its own hash, which exists (its lease was just read).
  if KEYS[4] == KEYS[1] or redis.call('EXISTS', KEYS[4]) == 1 then
    redis.call('HINCRBY', KEYS[4], 'tree_tokens', pt + ct)
    redis.call('HINCRBY', KEYS[4], 'tree_cost_nanos', cost)
  end
elseif len ~= n + 1 then
  return {-2, len}
end
local t = redis.call('HMGET', KEYS[4], 'tree_tokens', 'tree_cost_nanos')
return {1, t[1] or '0', t[2] or '0', h[2] or '0'}
"""

# KEYS: hash steps events
# ARGV: lease n data event mode
# mode 'obs': data is the observations' JSON, spliced into the stored reply in place of its closing
# '"observations":null}' (Step.to_json puts that field last), so the step's model reply is not
# encoded and sent a second time. Already spliced (a retried call): nothing to do. Neither: -3,
# and the caller sends the whole step (mode 'full': data replaces the stored step). Hot path, as
# SAVE_REPLY: one read of the hash, and LINDEX both checks that step n exists and fetches it.
COMPLETE = r"""
local h = redis.call('HMGET', KEYS[1], 'lease', 'cancel')
if h[1] ~= ARGV[1] then return {-1} end
local n = tonumber(ARGV[2])
local cur = redis.call('LINDEX', KEYS[2], n)
if not cur then return {-2} end
if ARGV[5] == 'obs' then
  local open = '"observations":null}'
  if string.sub(cur, -#open) == open then
    redis.call('LSET', KEYS[2], n, string.sub(cur, 1, -#open - 1) .. '"observations":' .. ARGV[3] .. '}')
  elseif string.sub(cur, -(#ARGV[3] + 16)) ~= '"observations":' .. ARGV[3] .. '}' then
    return {-3}
  end
else
  redis.call('LSET', KEYS[2], n, ARGV[3])
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 2000, '*', 'e', ARGV[4])
return {1, h[2] or '0'}
"""

# KEYS: hash steps events children stream dead root
# ARGV: lease status reason answer error now msg_id group channel ttl event n step_json pt ct cost
FINISH = (
    PRELUDE
    + r"""
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then ack(KEYS[5], ARGV[8], ARGV[7]); return {0} end
if is_terminal(cur) then ack(KEYS[5], ARGV[8], ARGV[7]); return {0} end
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return {-1} end
if ARGV[13] ~= '' then
  if not append_step(KEYS[1], KEYS[2], KEYS[7], tonumber(ARGV[12]), ARGV[13],
                     tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16])) then
    return {-2}
  end
end
local k = {hash=KEYS[1], steps=KEYS[2], events=KEYS[3], children=KEYS[4], stream=KEYS[5], dead=KEYS[6]}
finish(k, redis.call('HGET', KEYS[1], 'id'), {status=ARGV[2], reason=ARGV[3], answer=ARGV[4], error=ARGV[5],
       now=ARGV[6], msg_id=ARGV[7], group=ARGV[8], channel=ARGV[9], ttl=ARGV[10], event=ARGV[11]})
return {1}
"""
)

# KEYS: hash steps events children stream dead delayed
# ARGV: lease msg_id group error now ready_at max_attempts channel ttl retry_event dead_event
RETRY = (
    PRELUDE
    + r"""
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return {-1} end
local id = redis.call('HGET', KEYS[1], 'id')
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'error', ARGV[4])
if failures >= tonumber(ARGV[7]) then
  local k = {hash=KEYS[1], steps=KEYS[2], events=KEYS[3], children=KEYS[4], stream=KEYS[5], dead=KEYS[6]}
  finish(k, id, {status='dead', reason='failed', answer=redis.call('HGET', KEYS[1], 'answer') or '', error=ARGV[4],
                 now=ARGV[5], msg_id=ARGV[2], group=ARGV[3], channel=ARGV[8], ttl=ARGV[9], event=ARGV[11]})
  return {'dead', failures}
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'lease', '')
ack(KEYS[5], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[7], tonumber(ARGV[6]), id)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 2000, '*', 'e', ARGV[10])
return {'retry', failures}
"""
)

# KEYS: hash events stream
# ARGV: lease msg_id group event
RELEASE = (
    PRELUDE
    + r"""
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[1] then return {-1} end
local id = redis.call('HGET', KEYS[1], 'id')
redis.call('HSET', KEYS[1], 'status', 'queued', 'lease', '')
ack(KEYS[3], ARGV[3], ARGV[2])
local new_id = redis.call('XADD', KEYS[3], '*', 'task', id)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 2000, '*', 'e', ARGV[4])
return {1, new_id}
"""
)

# KEYS: hash steps events children stream dead delayed
# ARGV: now cancel_channel done_channel ttl requested_event finished_event group
CANCEL = (
    PRELUDE
    + r"""
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return -1 end
if is_terminal(st) then return 0 end
redis.call('HSET', KEYS[1], 'cancel', '1')
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 2000, '*', 'e', ARGV[5])
local id = redis.call('HGET', KEYS[1], 'id')
if st == 'queued' or st == 'awaiting_approval' then
  -- Nobody runs it: end it here. Its stream entry, if any, is acked by the worker that reaches it.
  redis.call('ZREM', KEYS[7], id)
  -- A parked task leaves the approvals set (approvals.approvals_key: the stream's sibling).
  redis.call('ZREM', string.sub(KEYS[5], 1, -6) .. 'approvals', id)
  local k = {hash=KEYS[1], steps=KEYS[2], events=KEYS[3], children=KEYS[4], stream=KEYS[5], dead=KEYS[6]}
  finish(k, id, {status='cancelled', reason='cancelled', answer='', error='', now=ARGV[1], msg_id='',
                 group=ARGV[7], channel=ARGV[3], ttl=ARGV[4], event=ARGV[6]})
  return 2
end
redis.call('PUBLISH', ARGV[2], id)
return 1
"""
)

# KEYS: delayed stream
# ARGV: now limit
PROMOTE = r"""
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('XADD', KEYS[2], '*', 'task', id)
end
return #due
"""

# KEYS: stream
# ARGV: group consumer msg_id ...
# Renews this consumer's entries (resets their idle time) and returns the ids another consumer
# owns now: a plain XCLAIM would steal back entries another worker already reclaimed.
HEARTBEAT = r"""
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] then
    if p[1][2] == ARGV[2] then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    else
      lost[#lost + 1] = ARGV[i]
    end
  end
  -- Not pending at all: acknowledged, normally by this worker's own finish a moment ago. If
  -- another worker had taken over and finished it, the lease check stops this one anyway.
end
return lost
"""
