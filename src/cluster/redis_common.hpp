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
