#include "pqmcp/gateway/inventory.hpp"

#include <cstdlib>
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>

#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "pqmcp/core/scope.hpp"
#include "pqmcp/mcp/protocol.hpp"
#include "upstream.hpp"

namespace pqmcp::gateway {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

class InventoryCategory final : public std::error_category {
  public:
    [[nodiscard]] const char* name() const noexcept override { return "inventory"; }
    [[nodiscard]] std::string message(int code) const override {
        switch (static_cast<InventoryErrc>(code)) {
            case InventoryErrc::start_failed:
                return "server did not start";
            case InventoryErrc::list_failed:
                return "list request failed";
            case InventoryErrc::timeout:
                return "timed out";
        }
        return "unknown inventory error";
    }
};

// Children are stopped with the MCP stdio sequence (stdin closed, SIGTERM,
// SIGKILL; 2 s each) and reaped; this bounds the wait for them.
constexpr auto k_reap_deadline = std::chrono::seconds{8};
constexpr auto k_reap_poll = std::chrono::milliseconds{20};

struct ListStep {
    std::string_view method;
    std::string_view key;  // of the result's array
    json::array Inventory::*target;
};

// One server: start, initialize, the lists page by page, stop. Runs on the
// io_context of fetch_inventories(); `done` is called once, on that thread.
class Fetch {
  public:
    Fetch(Services& services, const UpstreamConfig& config, const InventoryOptions& options,
          std::function<void()> done)
        : services_(services), config_(config), options_(options), done_(std::move(done)) {}

    void start() {
        json::object init{{"protocolVersion", mcp::k_latest_version},
                          {"capabilities", json::object{}},
                          {"clientInfo", json::object{{"name", options_.client_name},
                                                      {"version", options_.client_version}}}};
        client_ = std::make_shared<UpstreamClient>(services_, config_, std::move(init));
        client_->start([this](const tl::expected<void, UpstreamClient::Failure>& started) {
            if (finished_) {
                return;
            }
            if (!started) {
                failed(started.error().code == mcp::code::upstream_timeout
                           ? InventoryErrc::timeout
                           : InventoryErrc::start_failed,
                       "start and initialize: " + started.error().message);
                return;
            }
            initialized();
        });
    }

    [[nodiscard]] Result<Inventory> take() {
        if (error_) {
            return tl::unexpected(std::move(*error_));
        }
        if (!finished_) {
            return fail(InventoryErrc::timeout, "the inventory did not finish");
        }
        return std::move(inventory_);
    }

  private:
    void initialized() {
        const json::object& r = client_->initialize_result();
        if (const auto* v = r.if_contains("protocolVersion"); v != nullptr && v->is_string()) {
            inventory_.protocol_version = std::string(v->get_string());
        }
        if (const auto* v = r.if_contains("serverInfo"); v != nullptr && v->is_object()) {
            inventory_.server_info = v->get_object();
        }
        if (const auto* v = r.if_contains("capabilities"); v != nullptr && v->is_object()) {
            inventory_.capabilities = v->get_object();
        }
        if (const auto* v = r.if_contains("instructions"); v != nullptr && v->is_string()) {
            inventory_.instructions = std::string(v->get_string());
        }
        if (client_->has_capability("tools")) {
            steps_.push_back({mcp::method::tools_list, "tools", &Inventory::tools});
        }
        if (client_->has_capability("prompts")) {
            steps_.push_back({mcp::method::prompts_list, "prompts", &Inventory::prompts});
        }
        if (client_->has_capability("resources")) {
            steps_.push_back({mcp::method::resources_list, "resources", &Inventory::resources});
            steps_.push_back({mcp::method::resources_templates_list, "resourceTemplates",
                              &Inventory::resource_templates});
        }
        list(0);
    }

    // Every page of step `index`, then the next step.
    void list(std::size_t index) {
        if (index >= steps_.size()) {
            succeeded();
            return;
        }
        const ListStep& step = steps_.at(index);
        client_->list_all(
            step.method, step.key, nullptr, options_.max_pages,
            [this, index](tl::expected<UpstreamClient::Listed, UpstreamClient::Failure> listed) {
                if (finished_) {
                    return;
                }
                const ListStep& s = steps_.at(index);
                const std::string what(s.method);
                if (!listed) {
                    // Offered in the capabilities and still missing: servers
                    // that implement resources/list only are common.
                    if (listed.error().code == mcp::code::method_not_found) {
                        inventory_.notes.push_back(what + ": not implemented (" +
                                                   listed.error().message + ")");
                        list(index + 1);
                        return;
                    }
                    failed(listed.error().code == mcp::code::upstream_timeout
                               ? InventoryErrc::timeout
                               : InventoryErrc::list_failed,
                           what + ": " + listed.error().message);
                    return;
                }
                json::array& target = inventory_.*(s.target);
                for (auto& item : listed->items) {
                    target.push_back(std::move(item));
                }
                if (!listed->note.empty()) {
                    inventory_.notes.push_back(what + ": " + listed->note);
                }
                list(index + 1);
            });
    }

    void succeeded() { finish(); }

    void failed(InventoryErrc code, std::string detail) {
        error_ = Error{make_error_code(code), std::move(detail)};
        finish();
    }

    void finish() {
        if (finished_) {
            return;
        }
        finished_ = true;
        // Not from inside the client's own callback: on the next turn.
        asio::post(services_.io, [client = client_, done = done_] {
            client->stop();
            done();
        });
    }

    Services& services_;
    const UpstreamConfig& config_;
    const InventoryOptions& options_;
    std::function<void()> done_;
    std::shared_ptr<UpstreamClient> client_;
    std::vector<ListStep> steps_;
    Inventory inventory_;
    std::optional<Error> error_;
    bool finished_ = false;
};

}  // namespace

const std::error_category& inventory_category() noexcept {
    static const InventoryCategory category;
    return category;
}

std::error_code make_error_code(InventoryErrc e) noexcept {
    return {static_cast<int>(e), inventory_category()};
}

Result<Inventory> fetch_inventory(const UpstreamConfig& upstream,
                                  std::chrono::milliseconds timeout) {
    InventoryOptions options;
    options.timeout = timeout;
    return fetch_inventory(upstream, options);
}

Result<Inventory> fetch_inventory(const UpstreamConfig& upstream, const InventoryOptions& options) {
    auto all = fetch_inventories({upstream}, options);
    return std::move(all.front());
}

std::vector<Result<Inventory>> fetch_inventories(const std::vector<UpstreamConfig>& upstreams,
                                                 const InventoryOptions& options) {
    asio::io_context io(1);
    GatewayConfig config;
    config.timeouts.upstream_start = options.timeout;
    config.timeouts.upstream_request = options.timeout;
    // Parallelism is bounded here, not by the gateway's limit (stopped
    // children count until they are reaped).
    config.limits.max_children = upstreams.size() + 1;
    config.protect = options.protect;
    ChildCount children;
    Services services{io, config, children, {}, nullptr, {}, {}, {}};
    std::vector<UpstreamConfig> boxed = upstreams;
    for (auto& u : boxed) {
        u.sandbox.enabled = u.sandbox.enabled && options.sandbox;
    }
    config.upstreams = boxed;
    // Servers found on the machine are exactly the ones nobody vetted: they
    // run sandboxed, and what the sandbox refuses is logged.
    std::unique_ptr<sandbox::Supervisor> supervisor;
    std::filesystem::path tmp_root;
    if (options.sandbox) {
        supervisor = std::make_unique<sandbox::Supervisor>([](const sandbox::Violation& v) {
            spdlog::warn("server {} (pid {}): the sandbox refused {} {} ({})", v.label, v.pid,
                         v.access, v.what, v.syscall);
        });
        services.supervisor = supervisor.get();
        std::error_code ec;
        std::string pattern =
            (std::filesystem::temp_directory_path(ec) / "pqmcp-scan-XXXXXX").string();
        if (::mkdtemp(pattern.data()) != nullptr) {
            tmp_root = pattern;
            services.tmp_root = tmp_root;
        }
    }
    const OnExit cleanup([dir = tmp_root] {
        if (!dir.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(dir, ec);
        }
    });

    auto guard = asio::make_work_guard(io);
    std::vector<std::unique_ptr<Fetch>> fetches;
    fetches.reserve(upstreams.size());
    std::deque<std::size_t> waiting;
    std::size_t running = 0;
    std::size_t finished = 0;
    asio::steady_timer reap(io);
    std::chrono::steady_clock::time_point deadline;

    std::function<void()> wait_for_children = [&] {
        if (children.running() == 0 || std::chrono::steady_clock::now() >= deadline) {
            guard.reset();
            io.stop();
            return;
        }
        reap.expires_after(k_reap_poll);
        reap.async_wait([&](const boost::system::error_code&) { wait_for_children(); });
    };
    std::function<void()> start_next = [&] {
        const std::size_t parallel = std::max<std::size_t>(options.max_parallel, 1);
        while (running < parallel && !waiting.empty()) {
            const std::size_t i = waiting.front();
            waiting.pop_front();
            ++running;
            fetches.at(i)->start();
        }
    };
    for (std::size_t i = 0; i < upstreams.size(); ++i) {
        fetches.push_back(std::make_unique<Fetch>(services, config.upstreams[i], options, [&] {
            --running;
            ++finished;
            if (finished == upstreams.size()) {
                deadline = std::chrono::steady_clock::now() + k_reap_deadline;
                wait_for_children();
            } else {
                start_next();
            }
        }));
        waiting.push_back(i);
    }
    if (upstreams.empty()) {
        return {};
    }
    asio::post(io, start_next);
    io.run();

    std::vector<Result<Inventory>> out;
    out.reserve(fetches.size());
    for (auto& f : fetches) {
        out.push_back(f->take());
    }
    return out;
}

}  // namespace pqmcp::gateway
