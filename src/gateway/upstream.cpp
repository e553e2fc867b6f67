// The gateway's MCP client towards one upstream: start and initialize,
// requests with ids of its own and deadlines, cancellation, progress, the
// server's own requests and notifications, restarts after a crash.
#include "upstream.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include <unistd.h>

#include "pqmcp/demo/demo_server.hpp"
#include "pqmcp/mcp/protocol.hpp"
#include "pqmcp/observe/log.hpp"
#include "pqmcp/transport/child.hpp"
#include "pqmcp/transport/http_client.hpp"
#include "sandbox_policy.hpp"

namespace pqmcp::gateway {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

// A crash loop: this many exits within the window and the upstream is not
// started again.
constexpr std::size_t k_max_crashes = 3;
constexpr auto k_crash_window = std::chrono::seconds{60};

}  // namespace

UpstreamClient::UpstreamClient(Services& services, const UpstreamConfig& config,
                               json::object init_params, std::optional<std::string> owner)
    : services_(services),
      config_(config),
      init_params_(std::move(init_params)),
      owner_(std::move(owner)),
      idle_timer_(services.io) {}

UpstreamClient::~UpstreamClient() {
    *alive_ = false;
    if (channel_) {
        channel_->stop();
    }
}

bool UpstreamClient::has_capability(std::string_view name) const {
    const auto* caps = init_result_.if_contains("capabilities");
    return caps != nullptr && caps->is_object() && caps->as_object().contains(name);
}

void UpstreamClient::start(std::function<void(const tl::expected<void, Failure>&)> done) {
    switch (state_) {
        case State::ready:
            done({});
            return;
        case State::failed:
        case State::stopped:
            done(tl::unexpected(
                Failure{mcp::code::upstream_unavailable,
                        failure_.empty() ? "upstream " + name() + " is stopped" : failure_}));
            return;
        case State::starting:
            on_ready_.push_back(std::move(done));
            return;
        case State::idle:
            on_ready_.push_back(std::move(done));
            launch();
            return;
    }
}

void UpstreamClient::launch() {
    state_ = State::starting;
    const std::weak_ptr<UpstreamClient> self = weak_from_this();
    const std::uint64_t generation = ++channel_gen_;
    ChannelEvents events;
    events.on_message = [self, generation](mcp::Message m) {
        if (auto s = self.lock(); s && s->channel_gen_ == generation) {
            s->on_message(std::move(m));
        }
    };
    events.on_closed = [self, generation](const std::string& reason) {
        if (auto s = self.lock(); s && s->channel_gen_ == generation) {
            s->on_closed(reason);
        }
    };
    auto channel = open_channel(services_, config_, std::move(events), owner_ ? &*owner_ : nullptr);
    if (!channel) {
        failure_ = "upstream " + name() + " cannot start: " + channel.error().detail;
        spdlog::error("{}", failure_);
        // A limit may clear later; anything else will not.
        const bool limited = services_.children.full(owner_, services_.config.limits);
        state_ = limited ? State::idle : State::failed;
        const int code =
            state_ == State::idle ? mcp::code::over_limit : mcp::code::upstream_unavailable;
        fail_all(code, failure_);
        return;
    }
    channel_ = std::move(*channel);

    // Lifecycle, initialization: the client's own parameters, so the upstream
    // sees the capabilities (sampling, elicitation, roots) of the real client.
    const std::int64_t id = next_id_++;
    Pending p;
    p.internal = true;
    p.order = ++order_;
    p.reply = [this, alive = alive_, generation](tl::expected<mcp::Message, Failure> outcome) {
        if (!*alive || generation != channel_gen_) {
            return;
        }
        if (outcome) {
            if (const auto* result = outcome->body.if_contains("result");
                result != nullptr && result->is_object()) {
                init_result_ = result->as_object();
                // "After successful initialization, the client MUST send an
                // initialized notification to indicate it is ready".
                channel_->send(mcp::make_notification(mcp::method::initialized, {}));
                state_ = State::ready;
                spdlog::debug("upstream {}: initialized", name());
                flush_queue();
                auto waiting = std::move(on_ready_);
                on_ready_.clear();
                for (auto& cb : waiting) {
                    cb({});
                }
                touch();
                return;
            }
            const auto& e = outcome->body.at("error").as_object();
            outcome = tl::unexpected(
                Failure{mcp::code::upstream_unavailable,
                        "upstream " + name() + " refused initialize: " +
                            std::string(e.contains("message") && e.at("message").is_string()
                                            ? std::string_view(e.at("message").get_string())
                                            : std::string_view("(no message)"))});
        }
        failure_ = outcome.error().message;
        spdlog::error("{}", failure_);
        state_ = State::failed;
        if (channel_) {
            channel_->stop();
        }
        fail_all(outcome.error().code, failure_);
    };
    pending_.emplace(id, std::move(p));
    arm(id);
    send_now(mcp::make_request(id, mcp::method::initialize, init_params_));
}

namespace {

struct ListState {
    std::string method;
    std::string key;
    Subscriber* owner = nullptr;
    std::size_t max_pages = 0;
    UpstreamClient::ListReply done;
    UpstreamClient::Listed listed;
};

}  // namespace

void UpstreamClient::list_all(std::string_view method, std::string_view key, Subscriber* owner,
                              std::size_t max_pages, ListReply done) {
    auto state = std::make_shared<ListState>();
    state->method = method;
    state->key = key;
    state->owner = owner;
    state->max_pages = std::max<std::size_t>(max_pages, 1);
    state->done = std::move(done);
    // Each page's request holds the state; the pager holds itself weakly.
    using Pager = std::function<void(std::optional<json::value>, std::size_t)>;
    auto pager = std::make_shared<Pager>();
    *pager = [this, state, weak = std::weak_ptr<Pager>(pager)](std::optional<json::value> cursor,
                                                               std::size_t page) {
        json::object params;
        if (cursor) {
            params["cursor"] = *cursor;
        }
        request(
            mcp::make_request(0, state->method, std::move(params)), state->owner,
            [state, page, previous = std::move(cursor),
             next_page = weak.lock()](tl::expected<mcp::Message, Failure> reply) {
                if (!reply) {
                    state->done(tl::unexpected(std::move(reply.error())));
                    return;
                }
                const json::object& body = reply->body;
                const auto* result = body.if_contains("result");
                if (result == nullptr || !result->is_object()) {
                    const auto* error = body.if_contains("error");
                    const json::object* e = error != nullptr ? error->if_object() : nullptr;
                    const auto* code = e != nullptr ? e->if_contains("code") : nullptr;
                    const auto* text = e != nullptr ? e->if_contains("message") : nullptr;
                    const bool coded = code != nullptr && code->is_int64();
                    std::string why = e == nullptr ? std::string(
                                                         "a response with neither result "
                                                         "nor error")
                                                   : std::string("error");
                    if (coded) {
                        why += " " + std::to_string(code->as_int64());
                    }
                    if (text != nullptr && text->is_string()) {
                        why += ": " + std::string(text->get_string());
                    }
                    state->done(tl::unexpected(Failure{
                        coded ? static_cast<int>(code->as_int64()) : mcp::code::internal_error,
                        std::move(why)}));
                    return;
                }
                const json::object& r = result->get_object();
                if (const auto* items = r.if_contains(state->key); items != nullptr) {
                    if (!items->is_array()) {
                        state->done(tl::unexpected(Failure{
                            mcp::code::internal_error, "\"" + state->key + "\" is not an array"}));
                        return;
                    }
                    for (const auto& item : items->get_array()) {
                        state->listed.items.push_back(item);
                    }
                }
                const auto* next = r.if_contains("nextCursor");
                if (next == nullptr || next->is_null() ||
                    (next->is_string() && next->get_string().empty())) {
                    state->done(std::move(state->listed));
                    return;
                }
                if (previous && *previous == *next) {
                    state->listed.note = "the server repeated its cursor; stopped";
                } else if (page + 1 >= state->max_pages) {
                    state->listed.note =
                        "stopped after " + std::to_string(state->max_pages) + " pages";
                } else if (next_page) {
                    (*next_page)(*next, page + 1);
                    return;
                }
                state->done(std::move(state->listed));
            });
    };
    (*pager)(std::nullopt, 0);
}

std::uint64_t UpstreamClient::request(json::object message, Subscriber* owner, Reply reply,
                                      Progress progress, ParamHeaderValues param_headers) {
    if (state_ == State::failed || state_ == State::stopped) {
        Failure f{mcp::code::upstream_unavailable,
                  failure_.empty() ? "upstream " + name() + " is stopped" : failure_};
        asio::post(services_.io,
                   [reply = std::move(reply), f = std::move(f)] { reply(tl::unexpected(f)); });
        return 0;
    }
    const std::int64_t id = next_id_++;
    Pending p;
    p.reply = std::move(reply);
    p.progress = std::move(progress);
    p.owner = owner;
    p.order = ++order_;
    if (auto* params = message.if_contains("params"); params != nullptr && params->is_object()) {
        if (auto* meta = params->as_object().if_contains("_meta");
            meta != nullptr && meta->is_object()) {
            if (auto* token = meta->as_object().if_contains("progressToken"); token != nullptr) {
                // Our own token: tokens of different clients must not meet upstream.
                p.client_token = *token;
                std::string ours = "pqmcp-" + std::to_string(id);
                tokens_[ours] = id;
                *token = ours;
                p.token = std::move(ours);
            }
        }
    }
    message["id"] = id;
    if (state_ == State::ready) {
        pending_.emplace(id, std::move(p));
        arm(id);
        channel_->send_request(message, param_headers);
    } else {
        p.param_headers = std::move(param_headers);
        pending_.emplace(id, std::move(p));
        arm(id);
        queue_.emplace_back(id, std::move(message));
        if (state_ == State::idle) {
            launch();
        }
    }
    return static_cast<std::uint64_t>(id);
}

void UpstreamClient::cancel(std::uint64_t handle, std::string_view reason) {
    const auto id = static_cast<std::int64_t>(handle);
    const auto it = pending_.find(id);
    if (it == pending_.end()) {
        return;
    }
    if (it->second.token) {
        tokens_.erase(*it->second.token);
    }
    pending_.erase(it);
    // Cancellation: "The request SHOULD still be in-flight" and the receiver
    // "MAY ignore" it; either way no response is relayed for it.
    if (state_ == State::ready) {
        json::object params{{"requestId", id}};
        if (!reason.empty()) {
            params["reason"] = reason;
        }
        channel_->send(mcp::make_notification(mcp::method::cancelled, std::move(params)));
        channel_->abandon(json::value(id));
    } else {
        std::erase_if(queue_, [id](const auto& q) { return q.first == id; });
    }
}

void UpstreamClient::notify(const json::object& notification) {
    if (state_ == State::ready) {
        channel_->send(notification);
    } else if (state_ == State::starting) {
        queue_.emplace_back(0, notification);
    }
}

void UpstreamClient::answer(const json::value& server_id, json::object response) {
    response["id"] = server_id;
    if (channel_ && state_ == State::ready) {
        channel_->send(response);
    }
}

void UpstreamClient::subscribe(Subscriber* s) {
    if (std::find(subscribers_.begin(), subscribers_.end(), s) == subscribers_.end()) {
        subscribers_.push_back(s);
    }
}

void UpstreamClient::unsubscribe(Subscriber* s) {
    std::erase(subscribers_, s);
    std::vector<std::int64_t> owned;
    for (const auto& [id, p] : pending_) {
        if (p.owner == s) {
            owned.push_back(id);
        }
    }
    for (const auto id : owned) {
        cancel(static_cast<std::uint64_t>(id), "the client session ended");
    }
}

std::size_t UpstreamClient::pending_for(const Subscriber* s) const {
    return static_cast<std::size_t>(std::count_if(
        pending_.begin(), pending_.end(), [s](const auto& kv) { return kv.second.owner == s; }));
}

Subscriber* UpstreamClient::latest_owner() const {
    Subscriber* latest = nullptr;
    std::uint64_t order = 0;
    for (const auto& [id, p] : pending_) {
        if (p.owner != nullptr && p.order > order) {
            order = p.order;
            latest = p.owner;
        }
    }
    return latest;
}

void UpstreamClient::stop() {
    if (state_ == State::stopped) {
        return;
    }
    state_ = State::stopped;
    failure_ = "upstream " + name() + " is stopped";
    idle_timer_.cancel();
    ++channel_gen_;
    if (channel_) {
        channel_->stop();
        channel_.reset();
    }
    fail_all(mcp::code::upstream_unavailable, failure_);
}

void UpstreamClient::send_now(const json::object& message) {
    channel_->send(message);
}

void UpstreamClient::arm(std::int64_t id) {
    auto it = pending_.find(id);
    if (it == pending_.end()) {
        return;
    }
    Pending& p = it->second;
    if (!p.timer) {
        p.timer = std::make_unique<asio::steady_timer>(services_.io);
    }
    const auto timeout = p.internal ? services_.config.timeouts.upstream_start
                                    : services_.config.timeouts.upstream_request;
    p.timer->expires_after(timeout);
    p.timer->async_wait([self = weak_from_this(), id,
                         timeout](const boost::system::error_code& ec) {
        auto s = self.lock();
        if (ec || !s || !s->pending_.contains(id)) {
            return;
        }
        const std::string what =
            "upstream " + s->name() + " did not answer within " +
            (timeout.count() % 1000 == 0 ? std::to_string(timeout.count() / 1000) + " s"
                                         : std::to_string(timeout.count()) + " ms");
        spdlog::warn("{}", what);
        const bool internal = s->pending_.at(id).internal;
        if (!internal && s->state_ == State::ready) {
            s->channel_->send(mcp::make_notification(
                mcp::method::cancelled, json::object{{"requestId", id}, {"reason", "timeout"}}));
        }
        if (s->channel_) {
            s->channel_->abandon(json::value(id));  // its HTTP exchange, if any, ends now
        }
        s->complete(id, tl::unexpected(Failure{mcp::code::upstream_timeout, what}));
    });
}

void UpstreamClient::complete(std::int64_t id, tl::expected<mcp::Message, Failure> outcome) {
    auto it = pending_.find(id);
    if (it == pending_.end()) {
        return;
    }
    Pending p = std::move(it->second);
    pending_.erase(it);
    if (p.token) {
        tokens_.erase(*p.token);
    }
    if (p.timer) {
        p.timer->cancel();
    }
    touch();
    if (p.reply) {
        p.reply(std::move(outcome));
    }
}

void UpstreamClient::fail_all(int code, const std::string& message) {
    std::vector<std::int64_t> ids;
    ids.reserve(pending_.size());
    for (const auto& [id, p] : pending_) {
        ids.push_back(id);
    }
    queue_.clear();
    for (const auto id : ids) {
        complete(id, tl::unexpected(Failure{code, message}));
    }
    auto waiting = std::move(on_ready_);
    on_ready_.clear();
    for (auto& cb : waiting) {
        cb(tl::unexpected(Failure{code, message}));
    }
}

void UpstreamClient::flush_queue() {
    auto queued = std::move(queue_);
    queue_.clear();
    for (auto& [id, message] : queued) {
        if (id == 0) {
            channel_->send(message);
        } else if (const auto it = pending_.find(id); it != pending_.end()) {
            // Taken out first: a send that fails at once answers the request,
            // and that erases its entry.
            const ParamHeaderValues headers = std::move(it->second.param_headers);
            it->second.param_headers.clear();
            channel_->send_request(message, headers);
        }
    }
}

void UpstreamClient::touch() {
    if (config_.kind != UpstreamKind::stdio || state_ != State::ready) {
        return;
    }
    idle_timer_.expires_after(services_.config.timeouts.child_idle);
    idle_timer_.async_wait([self = weak_from_this()](const boost::system::error_code& ec) {
        auto s = self.lock();
        if (ec || !s || s->state_ != State::ready || !s->pending_.empty()) {
            return;
        }
        spdlog::info("upstream {}: idle; stopping its process (started again when needed)",
                     s->name());
        ++s->channel_gen_;  // its exit is expected
        s->channel_->stop();
        s->channel_.reset();
        s->state_ = State::idle;
    });
}

void UpstreamClient::on_message(mcp::Message message) {
    if (message.is_response()) {
        if (!message.id.is_int64()) {
            spdlog::debug("upstream {}: a response with an id we never sent", name());
            return;
        }
        const std::int64_t id = message.id.get_int64();
        complete(id, std::move(message));
        return;
    }
    if (message.is_request()) {
        if (message.method == mcp::method::ping) {
            // The gateway answers for itself: it is alive, and the client
            // behind it has its own liveness with the gateway.
            channel_->send(mcp::make_result(message.id, json::object{}));
            return;
        }
        Subscriber* target = latest_owner();
        if (target == nullptr && !subscribers_.empty()) {
            target = subscribers_.front();
        }
        if (target == nullptr) {
            channel_->send(
                mcp::make_error(message.id, mcp::code::method_not_found,
                                "no client is connected to relay " + message.method + " to"));
            return;
        }
        target->upstream_request(*this, std::move(message));
        return;
    }
    if (message.method == mcp::method::progress) {
        const json::object* params = message.params();
        const json::value* token =
            params != nullptr ? params->if_contains("progressToken") : nullptr;
        if (token == nullptr || !token->is_string()) {
            return;
        }
        const auto t = tokens_.find(std::string(token->get_string()));
        if (t == tokens_.end()) {
            return;  // for a request that is finished or cancelled
        }
        const std::int64_t id = t->second;
        arm(id);  // progress keeps the request alive
        Pending& p = pending_.at(id);
        if (p.progress) {
            message.params()->at("progressToken") = p.client_token;
            p.progress(std::move(message));
        }
        return;
    }
    const auto subscribers = subscribers_;
    for (Subscriber* s : subscribers) {
        if (std::find(subscribers_.begin(), subscribers_.end(), s) != subscribers_.end()) {
            s->upstream_notification(*this, message);
        }
    }
}

void UpstreamClient::on_closed(const std::string& reason) {
    if (state_ == State::stopped) {
        return;
    }
    ++channel_gen_;
    if (channel_) {
        // Destroyed on the next turn: this call may come from inside it.
        asio::post(services_.io, [channel = std::shared_ptr<Channel>(std::move(channel_))] {});
    }
    const auto now = std::chrono::steady_clock::now();
    crashes_.push_back(now);
    while (!crashes_.empty() && now - crashes_.front() > k_crash_window) {
        crashes_.pop_front();
    }
    const std::string what = "upstream " + name() + " " + reason;
    if (crashes_.size() >= k_max_crashes) {
        failure_ = what + "; it ended " + std::to_string(crashes_.size()) +
                   " times within a minute and is not started again";
        state_ = State::failed;
        spdlog::error("{}", failure_);
    } else {
        state_ = State::idle;
        spdlog::warn("{}; started again when next needed", what);
    }
    fail_all(mcp::code::upstream_unavailable, what + " before answering");
}

}  // namespace pqmcp::gateway
