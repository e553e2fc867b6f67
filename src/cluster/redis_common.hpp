// Internal: what the Redis clients share: the address, the keys, the scripts.
#pragma once

#include <string>
#include <string_view>

#include "pqmcp/cluster/cluster.hpp"

namespace pqmcp::cluster::detail {

// Token bucket. KEYS[1]: the bucket (a hash); ARGV: limit, window (ms).
// Refills at limit per window since it was last touched, on Redis's clock.
inline constexpr std::string_view k_rate_script = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[1])
local window = math.max(tonumber(ARGV[2]), 1)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = cap
  ts = now
else
  tokens = math.min(cap, tokens + math.max(now - ts, 0) * cap / window)
  ts = math.max(ts, now)
end
local ok = 0
if tokens >= 1 then
  tokens = tokens - 1
  ok = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], window * 2)
return ok
)lua";

// Sliding-window log. KEYS[1]: the uses (a sorted set scored by time in
// microseconds), KEYS[2]: a counter naming each use; ARGV: limit, window (ms).
inline constexpr std::string_view k_quota_script = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. tostring(now - window * 1000 + 1))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
local n = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], now, tostring(n))
redis.call('PEXPIRE', KEYS[1], window)
redis.call('PEXPIRE', KEYS[2], window)
return 1
)lua";

// A behaviour baseline (policy::Behaviour's, shared by every replica):
// reads it as it was before this call, then learns from the call, atomically,
// on Redis's clock. KEYS: the baseline (a hash: calls, last, rate, mean,
// var), its recent calls (a sorted set by time, ms), its tools (a hash of
// uses), its id runs (a hash "tool\nslot" -> "n run"). ARGV: tool, argument
// bytes, tau (s), lifetime (ms), burst window (ms), then slot and number
// pairs. Returns: calls, rate (decayed to now), recent calls, whether the
// tool was known, size mean, size variance, then the run of each slot.
// Bounded like the in-process baseline: 4,096 recent calls, 256 tools (the
// least used goes), 4,096 id slots (a random one goes).
inline constexpr std::string_view k_behaviour_script = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tool = ARGV[1]
local size = tonumber(ARGV[2])
local tau = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local function num(x) return string.format('%.17g', x) end
local b = redis.call('HMGET', KEYS[1], 'calls', 'last', 'rate', 'mean', 'var')
local calls = tonumber(b[1]) or 0
local last = tonumber(b[2]) or now
local rate = tonumber(b[3]) or 0
local mean = tonumber(b[4]) or 0
local var = tonumber(b[5]) or 0
if calls > 0 then
  rate = rate * math.exp(-math.max(now - last, 0) / 1000 / tau)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%d', now - window))
local recent = redis.call('ZCARD', KEYS[2])
local known = redis.call('HEXISTS', KEYS[3], tool)
local out = {calls, num(rate), recent, known, num(mean), num(var)}
for i = 6, #ARGV - 1, 2 do
  local field = tool .. '\n' .. ARGV[i]
  local n = tonumber(ARGV[i + 1])
  local run = 1
  local prev = redis.call('HGET', KEYS[4], field)
  if prev then
    local sp = string.find(prev, ' ', 1, true)
    if sp and n == tonumber(string.sub(prev, 1, sp - 1)) + 1 then
      run = tonumber(string.sub(prev, sp + 1)) + 1
    end
  elseif redis.call('HLEN', KEYS[4]) >= 4096 then
    redis.call('HDEL', KEYS[4], redis.call('HRANDFIELD', KEYS[4]))
  end
  redis.call('HSET', KEYS[4], field, string.format('%d %d', n, run))
  out[#out + 1] = run
end
calls = calls + 1
redis.call('ZADD', KEYS[2], now, string.format('%d', calls))
local over = redis.call('ZCARD', KEYS[2]) - 4096
if over > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
end
if known == 0 and redis.call('HLEN', KEYS[3]) >= 256 then
  local all = redis.call('HGETALL', KEYS[3])
  local least, uses = nil, nil
  for j = 1, #all, 2 do
    local u = tonumber(all[j + 1])
    if uses == nil or u < uses then
      least, uses = all[j], u
    end
  end
  redis.call('HDEL', KEYS[3], least)
end
redis.call('HINCRBY', KEYS[3], tool, 1)
local alpha = 1 / math.min(calls, 50)
local delta = size - mean
mean = mean + alpha * delta
var = (1 - alpha) * (var + alpha * delta * delta)
redis.call('HSET', KEYS[1], 'calls', string.format('%d', calls), 'last',
           string.format('%d', math.max(now, last)), 'rate', num(rate + 1), 'mean', num(mean),
           'var', num(var))
for k = 1, 4 do
  redis.call('PEXPIRE', KEYS[k], ttl)
end
return out
)lua";

struct Address {
    std::string host;  // empty with a unix socket
    int port = 6379;
    std::string socket;
    std::string user;
    std::string password;
    int db = 0;
    std::string shown;  // for logs, without the password
};

// redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH. Errors: bad_address.
[[nodiscard]] Result<Address> parse_address(const std::string& url);

// "pqmcp:<kind>:{H}", H the first 32 hex digits of SHA-256 of the slot.
[[nodiscard]] std::string key_of(std::string_view kind, const std::string& slot);

// The SHA-1 (hex) Redis names a script by (EVALSHA).
[[nodiscard]] std::string script_sha(std::string_view script);

}  // namespace pqmcp::cluster::detail
