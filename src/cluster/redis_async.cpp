// Rates and quotas in Redis without blocking the caller's thread: hiredis's
// asynchronous API, its socket watched by Asio. See cluster.hpp.
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <chrono>
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
#include "redis_common.hpp"

namespace pqmcp::cluster {

namespace asio = boost::asio;

namespace {

enum class Script : std::uint8_t { rate, quota };

struct Outcome {
    explicit Outcome(asio::io_context& io, AsyncCounts::Done d) : done(std::move(d)), timer(io) {}
    AsyncCounts::Done done;
    asio::steady_timer timer;
    bool answered = false;
};

}  // namespace

struct AsyncCounts::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::io_context& context, detail::Address a, RedisOptions o)
        : io(context),
          address(std::move(a)),
          options(std::move(o)),
          rate_sha(detail::script_sha(detail::k_rate_script)),
          quota_sha(detail::script_sha(detail::k_quota_script)) {}

    // One command in flight; hiredis owns it until its callback runs (once:
    // with the reply, or with none when the connection goes).
    struct Call {
        std::shared_ptr<Impl> self;
        std::shared_ptr<Outcome> outcome;
        Script script = Script::rate;
        std::vector<std::string> keys;
        std::string limit;
        std::string window;
        bool retried = false;  // sent again as EVAL after NOSCRIPT
    };

    asio::io_context& io;
    detail::Address address;
    RedisOptions options;
    std::string rate_sha;
    std::string quota_sha;
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

    void answer(const std::shared_ptr<Outcome>& o, std::optional<bool> value) {
        if (o->answered || closing) {
            return;
        }
        o->answered = true;
        o->timer.cancel();
        asio::post(io, [done = std::move(o->done), value] { done(value); });
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
            s.answer(call->outcome, std::nullopt);  // the connection went
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
            s.answer(call->outcome, std::nullopt);
            return;
        }
        if (reply->type != REDIS_REPLY_INTEGER) {
            s.note_failure("EVALSHA: not an integer reply");
            s.answer(call->outcome, std::nullopt);
            return;
        }
        s.note_success();
        s.answer(call->outcome, reply->integer == 1);
    }

    void send(std::unique_ptr<Call> call) {
        if (!connect()) {
            answer(call->outcome, std::nullopt);
            return;
        }
        const bool eval = call->retried;
        const std::string_view text =
            call->script == Script::rate ? detail::k_rate_script : detail::k_quota_script;
        const std::string& sha = call->script == Script::rate ? rate_sha : quota_sha;
        const std::string nkeys = std::to_string(call->keys.size());
        std::vector<const char*> argv{eval ? "EVAL" : "EVALSHA", eval ? text.data() : sha.c_str(),
                                      nkeys.c_str()};
        std::vector<std::size_t> lens{eval ? 4U : 7U, eval ? text.size() : sha.size(),
                                      nkeys.size()};
        for (const auto& k : call->keys) {
            argv.push_back(k.c_str());
            lens.push_back(k.size());
        }
        argv.push_back(call->limit.c_str());
        lens.push_back(call->limit.size());
        argv.push_back(call->window.c_str());
        lens.push_back(call->window.size());
        Call* raw = call.release();
        if (redisAsyncCommandArgv(ac, &Impl::on_reply, raw, static_cast<int>(argv.size()),
                                  argv.data(), lens.data()) != REDIS_OK) {
            std::unique_ptr<Call> back(raw);
            note_failure("the connection is closing");
            answer(back->outcome, std::nullopt);
        }
    }

    void start(Script script, std::vector<std::string> keys, std::uint64_t limit,
               std::chrono::milliseconds window, Done done) {
        auto outcome = std::make_shared<Outcome>(io, std::move(done));
        outcome->timer.expires_after(options.timeout);
        outcome->timer.async_wait(
            [weak = weak_from_this(), outcome](const boost::system::error_code& ec) {
                const auto self = weak.lock();
                if (ec || !self || outcome->answered) {
                    return;
                }
                // No answer in time: the connection is stuck or the server
                // is gone; drop it (its other calls answer too) and say so.
                self->answer(outcome, std::nullopt);
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
        call->limit = std::to_string(limit);
        call->window = std::to_string(std::max<std::int64_t>(window.count(), 1));
        send(std::move(call));
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
    impl_->start(Script::rate, {detail::key_of("rate", slot)}, rate.limit, rate.window,
                 std::move(done));
}

void AsyncCounts::count(const std::string& slot, const policy::Quota& quota, Done done) {
    const std::string base = detail::key_of("quota", slot);
    impl_->start(Script::quota, {base, base + ":n"}, quota.limit, quota.window, std::move(done));
}

std::string AsyncCounts::describe() const {
    return impl_->address.shown;
}

}  // namespace pqmcp::cluster
