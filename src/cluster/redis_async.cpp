// Rates and quotas in Redis without blocking the caller's thread: hiredis's
// asynchronous API, its socket watched by Asio. See cluster.hpp.
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <array>
#include <chrono>
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "pqmcp/cluster/cluster.hpp"
#include "pqmcp/policy/behaviour.hpp"
#include "redis_common.hpp"

namespace pqmcp::cluster {

namespace asio = boost::asio;

namespace {

enum class Script : std::uint8_t { rate, quota, behaviour };

// One call's answer on its way back: read() takes a reply into the caller's
// value (false: not a reply of its kind), done() is posted once with whether
// it did.
struct Outcome {
    using Read = std::function<bool(const redisReply&)>;
    using Finish = std::function<void(bool)>;
    Outcome(asio::io_context& io, Read r, Finish d)
        : read(std::move(r)), done(std::move(d)), timer(io) {}
    Read read;
    Finish done;
    asio::steady_timer timer;
    bool answered = false;
};

// "1.5" (a script's number as a bulk string) -> 1.5; nullopt for anything else.
std::optional<double> number_of(const redisReply& r) {
    if (r.type != REDIS_REPLY_STRING) {
        return std::nullopt;
    }
    try {
        std::size_t used = 0;
        const std::string text(r.str, r.len);
        const double v = std::stod(text, &used);
        return used == text.size() && std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

// The reply of k_behaviour_script for `slots` id slots.
std::optional<policy::Snapshot> snapshot_of(const redisReply& r, std::size_t slots) {
    if (r.type != REDIS_REPLY_ARRAY || r.elements != 6 + slots) {
        return std::nullopt;
    }
    const auto integer = [&r](std::size_t i) -> std::optional<long long> {
        const redisReply* e = r.element[i];
        return e->type == REDIS_REPLY_INTEGER && e->integer >= 0
                   ? std::optional<long long>(e->integer)
                   : std::nullopt;
    };
    const auto calls = integer(0);
    const auto rate = number_of(*r.element[1]);
    const auto recent = integer(2);
    const auto known = integer(3);
    const auto mean = number_of(*r.element[4]);
    const auto var = number_of(*r.element[5]);
    if (!calls || !rate || !recent || !known || !mean || !var) {
        return std::nullopt;
    }
    policy::Snapshot s;
    s.calls = static_cast<std::uint64_t>(*calls);
    s.baseline_per_minute = *rate;  // per tau for now; the caller scales it
    s.recent = static_cast<std::size_t>(*recent);
    s.tool_known = *known != 0;
    s.size_mean = *mean;
    s.size_var = *var;
    for (std::size_t i = 0; i < slots; ++i) {
        const auto run = integer(6 + i);
        if (!run) {
            return std::nullopt;
        }
        s.runs.push_back(static_cast<std::size_t>(*run));
    }
    return s;
}

}  // namespace

struct AsyncCounts::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::io_context& context, detail::Address a, RedisOptions o)
        : io(context),
          address(std::move(a)),
          options(std::move(o)),
          shas{detail::script_sha(detail::k_rate_script),
               detail::script_sha(detail::k_quota_script),
               detail::script_sha(detail::k_behaviour_script)} {}

    static std::string_view text_of(Script s) {
        switch (s) {
            case Script::rate:
                return detail::k_rate_script;
            case Script::quota:
                return detail::k_quota_script;
            case Script::behaviour:
                return detail::k_behaviour_script;
        }
        return {};
    }

    // One command in flight; hiredis owns it until its callback runs (once:
    // with the reply, or with none when the connection goes).
    struct Call {
        std::shared_ptr<Impl> self;
        std::shared_ptr<Outcome> outcome;
        Script script = Script::rate;
        std::vector<std::string> keys;
        std::vector<std::string> args;
        bool retried = false;  // sent again as EVAL after NOSCRIPT
    };

    asio::io_context& io;
    detail::Address address;
    RedisOptions options;
    std::array<std::string, 3> shas;  // by Script
    redisAsyncContext* ac = nullptr;
    std::optional<asio::posix::stream_descriptor> socket;
    bool want_read = false;
    bool want_write = false;
    bool read_waiting = false;
    bool write_waiting = false;
    std::uint64_t generation = 0;  // of the connection
    std::chrono::steady_clock::time_point down_until{};
    bool down = false;
    bool closing = false;

    // Answers a call once: with `reply` read into its value, or (null) with none.
    void answer(const std::shared_ptr<Outcome>& o, const redisReply* reply) {
        if (o->answered || closing) {
            return;
        }
        const bool read = reply != nullptr && o->read(*reply);
        if (reply != nullptr && !read) {
            note_failure("EVALSHA: an unexpected reply");
        } else if (read) {
            note_success();
        }
        o->answered = true;
        o->timer.cancel();
        asio::post(io, [done = std::move(o->done), read] { done(read); });
    }

    void note_failure(std::string_view why) {
        down_until = std::chrono::steady_clock::now() + options.retry;
        if (!down) {
            down = true;
            spdlog::warn(
                "{} does not answer ({}); rates and quotas take their fallback until it does "
                "(asked again every {} ms)",
                address.shown, why, options.retry.count());
        }
    }

    void note_success() {
        if (down) {
            down = false;
            spdlog::info("{} answers again; rates and quotas are counted there", address.shown);
        }
    }

    // Drops the connection: its calls answer nullopt (hiredis runs their
    // callbacks without a reply).
    void drop() {
        if (ac == nullptr) {
            return;
        }
        redisAsyncContext* c = ac;
        ac = nullptr;
        redisAsyncFree(c);
    }

    // ---- the event hooks hiredis calls ----
    static Impl& of(void* data) { return *static_cast<Impl*>(data); }
    static void add_read(void* d) {
        of(d).want_read = true;
        of(d).arm(true);
    }
    static void del_read(void* d) { of(d).want_read = false; }
    static void add_write(void* d) {
        of(d).want_write = true;
        of(d).arm(false);
    }
    static void del_write(void* d) { of(d).want_write = false; }
    static void cleanup(void* d) {
        Impl& s = of(d);
        s.want_read = false;
        s.want_write = false;
        if (s.socket) {
            (void)s.socket->release();  // the descriptor is hiredis's to close
            s.socket.reset();
        }
    }

    void arm(bool read) {
        bool& waiting = read ? read_waiting : write_waiting;
        if (waiting || !socket) {
            return;
        }
        waiting = true;
        socket->async_wait(
            read ? asio::posix::stream_descriptor::wait_read
                 : asio::posix::stream_descriptor::wait_write,
            [weak = weak_from_this(), gen = generation, read](const boost::system::error_code& ec) {
                const auto self = weak.lock();
                if (!self) {
                    return;
                }
                (read ? self->read_waiting : self->write_waiting) = false;
                if (ec || gen != self->generation || self->ac == nullptr) {
                    return;
                }
                if (read ? self->want_read : self->want_write) {
                    if (read) {
                        redisAsyncHandleRead(self->ac);
                    } else {
                        redisAsyncHandleWrite(self->ac);
                    }
                }
                if (gen == self->generation && self->ac != nullptr &&
                    (read ? self->want_read : self->want_write)) {
                    self->arm(read);
                }
            });
    }

    static void on_connect(const redisAsyncContext* c, int status) {
        Impl& s = of(c->data);
        if (status != REDIS_OK) {
            s.note_failure(c->errstr);
            if (s.ac == c) {
                s.ac = nullptr;  // hiredis frees it
            }
        }
    }

    static void on_disconnect(const redisAsyncContext* c, int status) {
        Impl& s = of(c->data);
        if (s.ac == c) {
            s.ac = nullptr;
        }
        if (status != REDIS_OK && !s.closing) {
            s.note_failure(c->errstr);
        }
    }

    static void on_setup(redisAsyncContext* c, void* r, void* /*privdata*/) {
        Impl& s = of(c->data);
        const auto* reply = static_cast<const redisReply*>(r);
        if (reply != nullptr && reply->type == REDIS_REPLY_ERROR) {
            s.note_failure(std::string_view(reply->str, reply->len));
            asio::post(s.io, [weak = s.weak_from_this()] {
                if (const auto self = weak.lock()) {
                    self->drop();
                }
            });
        }
    }

    bool connect() {
        if (ac != nullptr) {
            return true;
        }
        if (std::chrono::steady_clock::now() < down_until) {
            return false;  // failed a moment ago: the fallback, without waiting
        }
        redisAsyncContext* c = address.socket.empty()
                                   ? redisAsyncConnect(address.host.c_str(), address.port)
                                   : redisAsyncConnectUnix(address.socket.c_str());
        if (c == nullptr) {
            note_failure("cannot allocate a context");
            return false;
        }
        if (c->err != 0) {
            note_failure(c->errstr);
            redisAsyncFree(c);
            return false;
        }
        ++generation;
        ac = c;
        c->data = this;
        c->ev.data = this;
        c->ev.addRead = &Impl::add_read;
        c->ev.delRead = &Impl::del_read;
        c->ev.addWrite = &Impl::add_write;
        c->ev.delWrite = &Impl::del_write;
        c->ev.cleanup = &Impl::cleanup;
        socket.emplace(io, c->c.fd);
        redisAsyncSetConnectCallback(c, &Impl::on_connect);
        redisAsyncSetDisconnectCallback(c, &Impl::on_disconnect);
        // Queued before any count, on the same connection, in order.
        if (!address.password.empty()) {
            if (address.user.empty()) {
                redisAsyncCommand(c, &Impl::on_setup, nullptr, "AUTH %s", address.password.c_str());
            } else {
                redisAsyncCommand(c, &Impl::on_setup, nullptr, "AUTH %s %s", address.user.c_str(),
                                  address.password.c_str());
            }
        }
        if (address.db != 0) {
            redisAsyncCommand(c, &Impl::on_setup, nullptr, "SELECT %d", address.db);
        }
        return ac != nullptr;
    }

    static void on_reply(redisAsyncContext* /*c*/, void* r, void* privdata) {
        std::unique_ptr<Call> call(static_cast<Call*>(privdata));
        Impl& s = *call->self;
        if (s.closing) {
            return;
        }
        const auto* reply = static_cast<const redisReply*>(r);
        if (reply == nullptr) {
            s.answer(call->outcome, nullptr);  // the connection went
            return;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            const std::string_view error(reply->str, reply->len);
            if (!call->retried && error.starts_with("NOSCRIPT")) {
                // A Redis that does not have the script yet (or restarted):
                // EVAL sends it along, and Redis keeps it for the EVALSHAs.
                call->retried = true;
                s.send(std::move(call));
                return;
            }
            s.note_failure(fmt::format("EVALSHA: {}", error));
            s.answer(call->outcome, nullptr);
            return;
        }
        s.answer(call->outcome, reply);
    }

    void send(std::unique_ptr<Call> call) {
        if (!connect()) {
            answer(call->outcome, nullptr);
            return;
        }
        const bool eval = call->retried;
        const std::string_view text = text_of(call->script);
        const std::string& sha = shas.at(static_cast<std::size_t>(call->script));
        const std::string nkeys = std::to_string(call->keys.size());
        std::vector<const char*> argv{eval ? "EVAL" : "EVALSHA", eval ? text.data() : sha.c_str(),
                                      nkeys.c_str()};
        std::vector<std::size_t> lens{eval ? 4U : 7U, eval ? text.size() : sha.size(),
                                      nkeys.size()};
        for (const auto& k : call->keys) {
            argv.push_back(k.c_str());
            lens.push_back(k.size());
        }
        for (const auto& a : call->args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        Call* raw = call.release();
        if (redisAsyncCommandArgv(ac, &Impl::on_reply, raw, static_cast<int>(argv.size()),
                                  argv.data(), lens.data()) != REDIS_OK) {
            std::unique_ptr<Call> back(raw);
            note_failure("the connection is closing");
            answer(back->outcome, nullptr);
        }
    }

    void start(Script script, std::vector<std::string> keys, std::vector<std::string> args,
               Outcome::Read read, Outcome::Finish done) {
        auto outcome = std::make_shared<Outcome>(io, std::move(read), std::move(done));
        outcome->timer.expires_after(options.timeout);
        outcome->timer.async_wait(
            [weak = weak_from_this(), outcome](const boost::system::error_code& ec) {
                const auto self = weak.lock();
                if (ec || !self || outcome->answered) {
                    return;
                }
                // No answer in time: the connection is stuck or the server
                // is gone; drop it (its other calls answer too) and say so.
                self->answer(outcome, nullptr);
                self->note_failure(
                    fmt::format("no answer within {} ms", self->options.timeout.count()));
                asio::post(self->io, [weak] {
                    if (const auto s = weak.lock()) {
                        s->drop();
                    }
                });
            });
        auto call = std::make_unique<Call>();
        call->self = shared_from_this();
        call->outcome = std::move(outcome);
        call->script = script;
        call->keys = std::move(keys);
        call->args = std::move(args);
        send(std::move(call));
    }

    // A count: true (allowed) or false (used up).
    void start_count(Script script, std::vector<std::string> keys, std::uint64_t limit,
                     std::chrono::milliseconds window, Done done) {
        auto value = std::make_shared<bool>(false);
        start(
            script, std::move(keys),
            {std::to_string(limit), std::to_string(std::max<std::int64_t>(window.count(), 1))},
            [value](const redisReply& r) {
                if (r.type != REDIS_REPLY_INTEGER) {
                    return false;
                }
                *value = r.integer == 1;
                return true;
            },
            [value, done = std::move(done)](bool read) {
                done(read ? std::optional<bool>(*value) : std::nullopt);
            });
    }
};

AsyncCounts::AsyncCounts(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

AsyncCounts::~AsyncCounts() {
    impl_->closing = true;
    impl_->drop();
}

Result<std::unique_ptr<AsyncCounts>> AsyncCounts::create(asio::io_context& io,
                                                         RedisOptions options) {
    auto address = detail::parse_address(options.url);
    if (!address) {
        return tl::unexpected(address.error());
    }
    if (options.timeout.count() <= 0 || options.retry.count() < 0) {
        return fail(Errc::bad_address, "redis: the timeout must be positive");
    }
    return std::unique_ptr<AsyncCounts>(
        new AsyncCounts(std::make_shared<Impl>(io, std::move(*address), std::move(options))));
}

void AsyncCounts::take(const std::string& slot, const policy::Rate& rate, Done done) {
    impl_->start_count(Script::rate, {detail::key_of("rate", slot)}, rate.limit, rate.window,
                       std::move(done));
}

void AsyncCounts::count(const std::string& slot, const policy::Quota& quota, Done done) {
    const std::string base = detail::key_of("quota", slot);
    impl_->start_count(Script::quota, {base, base + ":n"}, quota.limit, quota.window,
                       std::move(done));
}

void AsyncCounts::observe(const std::string& identity, const policy::CallFacts& facts,
                          const policy::BehaviourSettings& settings, Observed done) {
    const std::string base = detail::key_of("behaviour", identity);
    const double tau = std::max(settings.half_life_seconds, 1.0) / std::log(2.0);
    const auto lifetime =
        std::chrono::duration_cast<std::chrono::milliseconds>(policy::baseline_lifetime(settings));
    std::vector<std::string> args{
        facts.tool, fmt::format("{}", facts.size), fmt::format("{}", tau),
        std::to_string(lifetime.count()),
        std::to_string(
            std::chrono::duration_cast<std::chrono::milliseconds>(policy::k_burst_window).count())};
    for (const auto& n : facts.numbered) {
        args.push_back(n.slot);
        args.push_back(std::to_string(n.n));
    }
    const std::size_t slots = facts.numbered.size();
    auto value = std::make_shared<std::optional<policy::Snapshot>>();
    impl_->start(
        Script::behaviour, {base, base + ":recent", base + ":tools", base + ":ids"},
        std::move(args),
        [value, slots, tau](const redisReply& r) {
            *value = snapshot_of(r, slots);
            if (*value) {
                (*value)->baseline_per_minute = (*value)->baseline_per_minute / tau * 60.0;
            }
            return value->has_value();
        },
        [value, done = std::move(done)](bool read) {
            done(read ? std::move(*value) : std::nullopt);
        });
}

std::string AsyncCounts::describe() const {
    return impl_->address.shown;
}

}  // namespace pqmcp::cluster
