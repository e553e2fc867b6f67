// The channels an upstream client talks through: a stdio child (sandboxed,
// minimal environment), Streamable HTTP, or the built-in demo server in
// process; open_channel() picks one for an upstream.
#include "upstream.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include <unistd.h>

#include "openapi_upstream.hpp"
#include "pqmcp/core/scope.hpp"
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

void deliver_line(const std::string& name, std::string_view line, const mcp::Limits& limits,
                  const std::function<void(mcp::Message)>& on_message) {
    auto parsed = mcp::parse(line, limits);
    if (!parsed) {
        spdlog::warn("upstream {}: ignoring a line that is not JSON-RPC ({})", name,
                     parsed.error().message());
        return;
    }
    for (auto& item : parsed->items) {
        if (!item) {
            spdlog::warn("upstream {}: ignoring an invalid message: {}", name, item.error().reason);
        } else if (on_message) {
            on_message(std::move(*item));
        }
    }
}

class StdioChannel final : public Channel {
  public:
    explicit StdioChannel(std::unique_ptr<transport::ChildProcess> child)
        : child_(std::move(child)) {}

    void send(const json::object& message) override {
        if (!child_->write(mcp::serialize(message))) {
            spdlog::warn("upstream child {}: its stdin is closed or full; message dropped",
                         child_->pid());
        }
    }
    void stop() override { child_->stop(); }

  private:
    std::unique_ptr<transport::ChildProcess> child_;
};

Result<std::unique_ptr<Channel>> open_stdio(Services& services, const UpstreamConfig& u,
                                            const ChannelEvents& events, const std::string* owner) {
    const auto& limits = services.config.limits;
    const auto number = services.children.reserve(owner, limits);
    if (!number) {
        return fail(Errc::startup_failed, number.error());
    }
    const std::optional<std::string> who = owner != nullptr ? std::optional(*owner) : std::nullopt;
    // Given back when the child has been reaped, or now if it never starts.
    OnExit place([count = &services.children, who] { count->release(who); });
    transport::ChildSpec spec;
    spec.command = u.command;
    spec.args = u.args;
    spec.cwd = u.cwd;
    spec.max_line = limits.message.max_message_bytes;
    spec.label = u.name;
    // A private temporary directory for each sandboxed child, removed once it
    // has been reaped.
    std::filesystem::path tmpdir;
    std::optional<sandbox::Prepared> box;
    std::string home;
    if (u.sandbox.enabled) {
        if (!services.tmp_root.empty()) {
            tmpdir = services.tmp_root / (u.name + "-" + std::to_string(*number));
            std::error_code ec;
            std::filesystem::create_directory(tmpdir, ec);
            if (ec) {
                return fail(Errc::startup_failed,
                            "sandbox: " + tmpdir.string() + ": " + ec.message());
            }
            std::filesystem::permissions(tmpdir, std::filesystem::perms::owner_all, ec);
        }
        const auto env = child_environment(u, tmpdir, {});
        std::string search_path;
        for (const auto& [key, value] : env) {
            if (key == "PATH") {
                search_path = value;
            }
        }
        auto exe = transport::find_executable(u.command, search_path);
        if (!exe) {
            return fail(Errc::startup_failed, exe.error().detail);
        }
        auto prepared = sandbox::prepare(child_policy(services.config, u, *exe, tmpdir),
                                         sandbox::probe(), services.supervisor != nullptr);
        if (!prepared) {
            std::error_code ec;
            std::filesystem::remove_all(tmpdir, ec);
            return fail(Errc::startup_failed, "sandbox: " + prepared.error().detail);
        }
        box = std::move(*prepared);
        home = box->home();
        if (box->changes_user() && !tmpdir.empty()) {
            (void)::chown(tmpdir.c_str(), box->uid(), box->gid());
        }
        spec.sandbox = &*box;
        spec.supervisor = services.supervisor;
    }
    spec.env = child_environment(u, tmpdir, home);
    spec.on_reaped = [&count = services.children, tmpdir, who] {
        count.release(who);
        if (!tmpdir.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(tmpdir, ec);
        }
    };
    auto pid = std::make_shared<int>(0);
    transport::ChildCallbacks callbacks;
    const std::string name = u.name;
    callbacks.on_line = [name, limits = limits.message,
                         on_message = events.on_message](const std::string& line) {
        deliver_line(name, line, limits, on_message);
    };
    callbacks.on_line_error = [name](const Error& error) {
        spdlog::warn("upstream {}: {}; the line was skipped", name, error.message());
    };
    callbacks.on_stderr_line = [name, pid](const std::string& line) {
        // A child's words, not ours: escaped, so they cannot pose as log lines.
        spdlog::info("[{} {}] {}", name, *pid, observe::escape_log(line));
    };
    callbacks.on_exit = [name, pid, on_closed = events.on_closed](std::string how) {
        spdlog::debug("upstream {} (pid {}) {}", name, *pid, how);
        if (on_closed) {
            on_closed(std::move(how));
        }
    };
    auto child =
        transport::ChildProcess::spawn(services.io.get_executor(), spec, std::move(callbacks));
    if (!child) {
        std::error_code ec;
        std::filesystem::remove_all(tmpdir, ec);
        return fail(Errc::startup_failed, child.error().detail);
    }
    place.release();  // on_reaped gives it back now
    *pid = (*child)->pid();
    spdlog::debug("upstream {}: started {} (pid {}{})", u.name, u.command, *pid,
                  u.sandbox.enabled ? ", sandboxed" : "");
    return std::unique_ptr<Channel>(std::make_unique<StdioChannel>(std::move(*child)));
}

class HttpChannel final : public Channel {
  public:
    HttpChannel(Services& services, const UpstreamConfig& u, transport::Url url,
                const ChannelEvents& events)
        : client_(services.io.get_executor(), options(services, u, std::move(url)),
                  callbacks(u.name, events)) {}

    void send(const json::object& message) override { client_.send(message); }
    void send_request(const json::object& message,
                      const ParamHeaderValues& param_headers) override {
        client_.send(message, param_headers);
    }
    void stop() override { client_.close(); }
    void abandon(const json::value& id) override { client_.cancel(id); }

  private:
    static transport::HttpClientOptions options(Services& services, const UpstreamConfig& u,
                                                transport::Url url) {
        transport::HttpClientOptions o;
        o.url = std::move(url);
        if (const auto it = services.tls_contexts.find(u.name); it != services.tls_contexts.end()) {
            o.tls = it->second;
        }
        o.headers = u.headers;
        // The gateway's own token for an upstream that wants one; a client's
        // token never goes upstream.
        if (const auto it = services.upstream_tokens.find(u.name);
            it != services.upstream_tokens.end()) {
            o.authorization = [source = it->second] { return source->authorization(); };
        }
        o.revision = u.protocol == "auto" ? transport::HttpClientOptions::Revision::discover
                     : u.protocol == "2026-07-28"
                         ? transport::HttpClientOptions::Revision::stateless
                         : transport::HttpClientOptions::Revision::sessions;
        o.message_limits = services.config.limits.message;
        o.response_timeout = services.config.timeouts.upstream_request;
        o.request_deadline = services.config.timeouts.upstream_deadline;
        o.pool_wait = services.config.timeouts.upstream_pool_wait;
        o.max_connections = services.config.limits.upstream_connections;
        return o;
    }

    static transport::HttpClientCallbacks callbacks(const std::string& name,
                                                    const ChannelEvents& events) {
        transport::HttpClientCallbacks cb;
        cb.on_message = events.on_message;
        // A request that could not be delivered is answered here, so that the
        // client waiting for it learns why.
        cb.on_failure = [name, on_message = events.on_message](const json::object& message,
                                                               const Error& error,
                                                               const json::object* server_error) {
            const auto* id = message.if_contains("id");
            if (id == nullptr || !message.contains("method") || !on_message) {
                spdlog::warn("upstream {}: a message could not be delivered: {}", name,
                             error.message());
                return;
            }
            json::object reply;
            if (server_error != nullptr) {
                reply = *server_error;
                reply["id"] = *id;
            } else {
                reply = mcp::make_error(*id, mcp::code::upstream_unavailable,
                                        "upstream " + name + ": " + error.message());
            }
            if (auto item = mcp::classify(json::value(std::move(reply)))) {
                on_message(std::move(*item));
            }
        };
        cb.on_connected = [name](const tls::HandshakeInfo& info) {
            spdlog::info("upstream {}: TLS {} {} {}", name, info.group, info.peer_signature,
                         info.peer_id ? info.peer_id->str() : "");
        };
        return cb;
    }

    transport::McpHttpClient client_;
};

// The built-in demo server, in-process: answers on the next turn of the loop.
class DemoChannel final : public Channel {
  public:
    DemoChannel(asio::io_context& io, ChannelEvents events) : io_(io), events_(std::move(events)) {}
    ~DemoChannel() override { *alive_ = false; }
    DemoChannel(const DemoChannel&) = delete;
    DemoChannel& operator=(const DemoChannel&) = delete;
    DemoChannel(DemoChannel&&) = delete;
    DemoChannel& operator=(DemoChannel&&) = delete;

    void send(const json::object& message) override {
        asio::post(io_, [this, alive = alive_, copy = json::value(message)]() mutable {
            if (!*alive) {
                return;
            }
            auto item = mcp::classify(std::move(copy));
            if (!item) {
                return;
            }
            auto reply = server_.handle(*item);
            if (!reply || !events_.on_message) {
                return;
            }
            if (auto answer = mcp::classify(json::value(std::move(*reply)))) {
                events_.on_message(std::move(*answer));
            }
        });
    }
    void stop() override {}

  private:
    asio::io_context& io_;
    ChannelEvents events_;
    demo::DemoServer server_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace

std::vector<std::pair<std::string, std::string>> child_environment(
    const UpstreamConfig& u, const std::filesystem::path& tmpdir, const std::string& home) {
    auto env = transport::minimal_environment(u.env_passthrough);
    const auto set = [&env](const std::string& key, const std::string& value) {
        for (auto& [k, v] : env) {
            if (k == key) {
                v = value;
                return;
            }
        }
        env.emplace_back(key, value);
    };
    if (!home.empty()) {
        set("HOME", home);
    }
    if (!tmpdir.empty()) {
        set("TMPDIR", tmpdir.string());
    }
    for (const auto& [key, value] : u.env) {
        set(key, value);
    }
    return env;
}

tl::expected<std::uint64_t, std::string> ChildCount::reserve(const std::string* owner,
                                                             const Limits& limits) {
    const std::lock_guard lock(mutex_);
    if (running_ >= limits.max_children) {
        return tl::unexpected("the gateway already runs " + std::to_string(running_) +
                              " upstream processes, its limit (limits.max_children)");
    }
    // One identity's sessions cannot take every child for themselves.
    if (owner != nullptr) {
        const auto it = by_owner_.find(*owner);
        const std::size_t own = it == by_owner_.end() ? 0 : it->second;
        if (own >= limits.max_children_per_identity) {
            return tl::unexpected(
                "this identity's sessions already run " + std::to_string(own) +
                " upstream processes, its limit (limits.max_children_per_identity)");
        }
        ++by_owner_[*owner];
    }
    ++running_;
    return ++started_;
}

void ChildCount::release(const std::optional<std::string>& owner) {
    const std::lock_guard lock(mutex_);
    --running_;
    if (owner) {
        if (const auto it = by_owner_.find(*owner); it != by_owner_.end() && --it->second == 0) {
            by_owner_.erase(it);
        }
    }
}

std::size_t ChildCount::running() const {
    const std::lock_guard lock(mutex_);
    return running_;
}

bool ChildCount::full(const std::optional<std::string>& owner, const Limits& limits) const {
    const std::lock_guard lock(mutex_);
    if (running_ >= limits.max_children) {
        return true;
    }
    if (!owner) {
        return false;
    }
    const auto it = by_owner_.find(*owner);
    return it != by_owner_.end() && it->second >= limits.max_children_per_identity;
}

Result<std::unique_ptr<Channel>> open_channel(Services& services, const UpstreamConfig& upstream,
                                              ChannelEvents events, const std::string* owner) {
    switch (upstream.kind) {
        case UpstreamKind::stdio:
            return open_stdio(services, upstream, events, owner);
        case UpstreamKind::http: {
            auto url = transport::parse_url(upstream.url);
            if (!url) {
                return fail(Errc::startup_failed, url.error().detail);
            }
            if (url->tls && !services.tls_contexts.contains(upstream.name)) {
                return fail(Errc::startup_failed,
                            "no TLS context for https upstream " + upstream.name);
            }
            return std::unique_ptr<Channel>(std::make_unique<HttpChannel>(
                services, upstream, std::move(*url), std::move(events)));
        }
        case UpstreamKind::demo:
            return std::unique_ptr<Channel>(
                std::make_unique<DemoChannel>(services.io, std::move(events)));
        case UpstreamKind::openapi: {
            const auto it = services.openapi.find(upstream.name);
            if (it == services.openapi.end()) {
                return fail(Errc::startup_failed,
                            "openapi upstream " + upstream.name + " is not loaded");
            }
            return open_openapi(services.io, it->second, std::move(events));
        }
    }
    return fail(Errc::startup_failed, "unknown upstream kind");
}

}  // namespace pqmcp::gateway
