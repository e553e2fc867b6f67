// Rates and quotas in Redis (hiredis, synchronous calls bounded by socket
// timeouts), shared by every replica. See cluster.hpp.
#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "pqmcp/cluster/cluster.hpp"
#include "redis_common.hpp"

namespace pqmcp::cluster {

namespace {

using detail::Address;
using detail::k_quota_script;
using detail::k_rate_script;
using detail::key_of;
using detail::parse_address;

struct ContextDeleter {
    void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;

struct ReplyDeleter {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

timeval to_timeval(std::chrono::milliseconds d) {
    timeval tv{};
    tv.tv_sec = static_cast<decltype(tv.tv_sec)>(d.count() / 1000);
    tv.tv_usec = static_cast<decltype(tv.tv_usec)>((d.count() % 1000) * 1000);
    return tv;
}

class RedisCounts final : public policy::SharedCounts {
  public:
    RedisCounts(Address address, RedisOptions options)
        : address_(std::move(address)), options_(std::move(options)) {}

    std::optional<bool> take(const std::string& slot, const policy::Rate& rate) override {
        const std::string key = key_of("rate", slot);
        return run(Script::rate, {key}, rate.limit, rate.window);
    }

    std::optional<bool> count(const std::string& slot, const policy::Quota& quota) override {
        const std::string base = key_of("quota", slot);
        return run(Script::quota, {base, base + ":n"}, quota.limit, quota.window);
    }

    [[nodiscard]] std::string describe() const override { return address_.shown; }

  private:
    enum class Script : std::uint8_t { rate, quota };

    using Clock = std::chrono::steady_clock;

    [[nodiscard]] std::int64_t now_ms() const {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   Clock::now().time_since_epoch())
            .count();
    }

    // A connection that answered PING-free setup (AUTH, SELECT, the scripts).
    Context connect() {
        const timeval tv = to_timeval(options_.timeout);
        Context c(address_.socket.empty()
                      ? redisConnectWithTimeout(address_.host.c_str(), address_.port, tv)
                      : redisConnectUnixWithTimeout(address_.socket.c_str(), tv));
        if (!c || c->err != 0) {
            note_failure(c ? c->errstr : "cannot allocate a context");
            return nullptr;
        }
        if (redisSetTimeout(c.get(), tv) != REDIS_OK) {
            note_failure("cannot set the socket timeout");
            return nullptr;
        }
        if (!address_.password.empty()) {
            Reply r(address_.user.empty() ? static_cast<redisReply*>(redisCommand(
                                                c.get(), "AUTH %s", address_.password.c_str()))
                                          : static_cast<redisReply*>(redisCommand(
                                                c.get(), "AUTH %s %s", address_.user.c_str(),
                                                address_.password.c_str())));
            if (!ok(c.get(), r.get(), "AUTH")) {
                return nullptr;
            }
        }
        if (address_.db != 0) {
            Reply r(static_cast<redisReply*>(redisCommand(c.get(), "SELECT %d", address_.db)));
            if (!ok(c.get(), r.get(), "SELECT")) {
                return nullptr;
            }
        }
        if (!load_scripts(c.get())) {
            return nullptr;
        }
        return c;
    }

    bool ok(redisContext* c, const redisReply* r, std::string_view what) {
        if (r == nullptr) {
            note_failure(fmt::format("{}: {}", what, c->errstr));
            return false;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            note_failure(fmt::format("{}: {}", what, std::string_view(r->str, r->len)));
            return false;
        }
        return true;
    }

    bool load_scripts(redisContext* c) {
        for (const auto script : {Script::rate, Script::quota}) {
            const std::string_view text = script == Script::rate ? k_rate_script : k_quota_script;
            Reply r(static_cast<redisReply*>(
                redisCommand(c, "SCRIPT LOAD %b", text.data(), text.size())));
            if (!ok(c, r.get(), "SCRIPT LOAD") || r->type != REDIS_REPLY_STRING) {
                return false;
            }
            const std::lock_guard lock(mutex_);
            (script == Script::rate ? rate_sha_ : quota_sha_) = std::string(r->str, r->len);
        }
        return true;
    }

    std::optional<bool> run(Script script, const std::vector<std::string>& keys,
                            std::uint64_t limit, std::chrono::milliseconds window) {
        if (now_ms() < down_until_.load(std::memory_order_relaxed)) {
            return std::nullopt;  // failed a moment ago: the fallback, without waiting
        }
        Context c = acquire();
        if (!c) {
            return std::nullopt;
        }
        const std::string limit_text = std::to_string(limit);
        const std::string window_text = std::to_string(std::max<std::int64_t>(window.count(), 1));
        for (int attempt = 0; attempt < 2; ++attempt) {
            std::string sha;
            {
                const std::lock_guard lock(mutex_);
                sha = script == Script::rate ? rate_sha_ : quota_sha_;
            }
            const std::string nkeys = std::to_string(keys.size());
            std::vector<const char*> argv{"EVALSHA", sha.c_str(), nkeys.c_str()};
            std::vector<std::size_t> lens{7, sha.size(), nkeys.size()};
            for (const auto& k : keys) {
                argv.push_back(k.c_str());
                lens.push_back(k.size());
            }
            argv.push_back(limit_text.c_str());
            lens.push_back(limit_text.size());
            argv.push_back(window_text.c_str());
            lens.push_back(window_text.size());
            Reply r(static_cast<redisReply*>(redisCommandArgv(
                c.get(), static_cast<int>(argv.size()), argv.data(), lens.data())));
            if (r == nullptr) {
                note_failure(c->errstr);
                return std::nullopt;  // the connection is dropped with `c`
            }
            if (r->type == REDIS_REPLY_ERROR) {
                const std::string_view error(r->str, r->len);
                if (attempt == 0 && error.starts_with("NOSCRIPT")) {
                    // Redis restarted (or SCRIPT FLUSH): load them again.
                    if (!load_scripts(c.get())) {
                        return std::nullopt;
                    }
                    continue;
                }
                note_failure(fmt::format("EVALSHA: {}", error));
                release(std::move(c));
                return std::nullopt;
            }
            if (r->type != REDIS_REPLY_INTEGER) {
                note_failure("EVALSHA: not an integer reply");
                return std::nullopt;
            }
            note_success();
            const bool allowed = r->integer == 1;
            release(std::move(c));
            return allowed;
        }
        return std::nullopt;
    }

    Context acquire() {
        {
            const std::lock_guard lock(mutex_);
            if (!idle_.empty()) {
                Context c = std::move(idle_.back());
                idle_.pop_back();
                return c;
            }
        }
        return connect();
    }

    void release(Context c) {
        const std::lock_guard lock(mutex_);
        if (idle_.size() < k_pool) {
            idle_.push_back(std::move(c));
        }
    }

    void note_failure(std::string_view why) {
        down_until_.store(now_ms() + options_.retry.count(), std::memory_order_relaxed);
        if (!down_.exchange(true)) {
            spdlog::warn(
                "{} does not answer ({}); rates and quotas take their fallback until it does "
                "(asked again every {} ms)",
                address_.shown, why, options_.retry.count());
        }
    }

    void note_success() {
        if (down_.exchange(false)) {
            spdlog::info("{} answers again; rates and quotas are counted there", address_.shown);
        }
    }

    static constexpr std::size_t k_pool = 64;
    Address address_;
    RedisOptions options_;
    std::mutex mutex_;  // the pool and the script digests
    std::vector<Context> idle_;
    std::string rate_sha_;
    std::string quota_sha_;
    std::atomic<std::int64_t> down_until_{0};
    std::atomic<bool> down_{false};
};

}  // namespace

Result<std::shared_ptr<policy::SharedCounts>> redis_counts(RedisOptions options) {
    auto address = parse_address(options.url);
    if (!address) {
        return tl::unexpected(address.error());
    }
    if (options.timeout.count() <= 0 || options.retry.count() < 0) {
        return fail(Errc::bad_address, "redis: the timeout must be positive");
    }
    return std::make_shared<RedisCounts>(std::move(*address), std::move(options));
}

}  // namespace pqmcp::cluster
