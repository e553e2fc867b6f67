// An upstream made from an OpenAPI description: the service every session
// shares, and the in-process MCP server each session talks to.
#include "openapi_upstream.hpp"

#include "pqmcp/crypto/util.hpp"

#include <cstdlib>
#include <fstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/json/serialize.hpp>

#include "pqmcp/core/bytes.hpp"
#include "pqmcp/mcp/protocol.hpp"
#include "pqmcp/policy/schema.hpp"
#include "pqmcp/tls/web.hpp"

namespace pqmcp::gateway {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

std::string encode_query(std::string_view s) {
    static constexpr char k_hex[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
            out += c;
        } else {
            out += '%';
            out += k_hex[u >> 4U];
            out += k_hex[u & 0x0FU];
        }
    }
    return out;
}

// The secret of `auth`, from wherever the configuration says.
Result<crypto::SecretBytes> read_secret(const OpenApiAuth& auth, const std::string& upstream) {
    std::string value;
    if (!auth.value.empty()) {
        value = auth.value;
    } else if (!auth.value_file.empty()) {
        std::ifstream in(auth.value_file, std::ios::binary);
        if (!in) {
            return fail(Errc::invalid_config, fmt::format("upstream {}: openapi.auth.value_file {} "
                                                          "cannot be read",
                                                          upstream, auth.value_file.string()));
        }
        value.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) {
            value.pop_back();
        }
    } else if (!auth.value_env.empty()) {
        // NOLINTNEXTLINE(concurrency-mt-unsafe): read at start, before any thread
        const char* env = std::getenv(auth.value_env.c_str());
        if (env == nullptr || *env == '\0') {
            return fail(Errc::invalid_config,
                        fmt::format("upstream {}: openapi.auth.value_env: {} is not set", upstream,
                                    auth.value_env));
        }
        value = env;
    }
    if (value.empty()) {
        return fail(Errc::invalid_config,
                    fmt::format("upstream {}: openapi.auth: the secret is empty", upstream));
    }
    crypto::SecretBytes secret(as_bytes(value));
    OPENSSL_cleanse(value.data(), value.size());
    return secret;
}

}  // namespace

Result<std::shared_ptr<OpenApiService>> OpenApiService::create(const UpstreamConfig& upstream,
                                                               const GatewayConfig& config) {
    const auto& o = upstream.openapi;
    openapi::Options options;
    options.include = {o.include.tags, o.include.paths, o.include.methods, o.include.operations};
    options.exclude = {o.exclude.tags, o.exclude.paths, o.exclude.methods, o.exclude.operations};
    options.max_tools = o.max_tools;
    options.name_max_length = o.name_max_length;
    options.prefix_length = config.namespacing ? upstream.name.size() + config.separator.size() : 0;
    options.description_max_length = o.description_max_length;
    options.output_schema = o.output_schema;
    options.limits.max_bytes = o.max_spec_bytes;
    std::shared_ptr<OpenApiService> s(new OpenApiService(upstream, std::move(options)));
    auto catalog = s->read();
    if (!catalog) {
        return tl::unexpected(catalog.error());
    }
    s->base_url_ = o.base_url;
    if (s->base_url_.empty()) {
        // follow_servers: the first absolute http(s) server of the spec.
        for (const auto& server : catalog->servers) {
            if (server.starts_with("https://") || server.starts_with("http://")) {
                s->base_url_ = server;
                break;
            }
        }
        if (s->base_url_.empty()) {
            return fail(Errc::invalid_config,
                        fmt::format("upstream {}: the spec names no absolute server; set "
                                    "openapi.base_url",
                                    upstream.name));
        }
    }
    auto url = transport::parse_url(s->base_url_);
    if (!url) {
        return fail(Errc::invalid_config, fmt::format("upstream {}: openapi base URL: {}",
                                                      upstream.name, url.error().detail));
    }
    s->base_ = *url;
    s->base_path_ = url->target.substr(0, url->target.find('?'));
    while (!s->base_path_.empty() && s->base_path_.back() == '/') {
        s->base_path_.pop_back();
    }
    if (url->tls) {
        tls::WebClientOptions web;
        web.ca_file = o.ca;
        auto ctx = tls::make_web_client_context(web);
        if (!ctx) {
            return fail(Errc::startup_failed,
                        fmt::format("upstream {}: TLS: {}", upstream.name, ctx.error().message()));
        }
        s->tls_ = std::move(*ctx);
    } else if (!transport::is_loopback_host(url->host)) {
        spdlog::warn(
            "upstream {}: the API at {} is plain HTTP: its traffic and credentials are "
            "not encrypted",
            upstream.name, url->authority());
    }
    for (const auto& a : o.auth) {
        auto secret = read_secret(a, upstream.name);
        if (!secret) {
            return tl::unexpected(secret.error());
        }
        s->secrets_.push_back(std::move(*secret));
    }
    s->catalog_.store(std::make_shared<const openapi::Catalog>(std::move(*catalog)));
    return s;
}

namespace {

// A description served over HTTP(S): fetched once (at start, on reload) with
// the same limits as a file, over the public-web TLS profile; its $refs may
// not name files (there is no directory to stay under), nor the network.
Result<std::string> fetch_spec(const std::string& address, const OpenApiUpstreamConfig& o) {
    auto url = transport::parse_url(address);
    if (!url) {
        return tl::unexpected(url.error());
    }
    crypto::SslCtxPtr ctx;
    if (url->tls) {
        tls::WebClientOptions web;
        web.ca_file = o.ca;
        auto made = tls::make_web_client_context(web);
        if (!made) {
            return tl::unexpected(made.error());
        }
        ctx = std::move(*made);
    }
    asio::io_context io;
    transport::RestClientOptions options;
    options.base = *url;
    options.tls = ctx.get();
    options.request_timeout = o.timeout;
    options.max_response_bytes = o.max_spec_bytes;
    options.max_connections = 1;
    std::optional<Result<transport::RestResponse>> answer;
    {
        transport::RestClient client(io.get_executor(), options);
        transport::RestRequest get;
        get.method = "GET";
        get.target = url->target;
        get.headers.emplace_back("Accept", "application/json, application/yaml, text/yaml, */*");
        client.send(std::move(get),
                    [&answer](Result<transport::RestResponse> r) { answer = std::move(r); });
        io.run_for(o.timeout + std::chrono::seconds{1});
    }
    if (!answer) {
        return fail(Errc::invalid_config, address + ": no answer within the timeout");
    }
    if (!*answer) {
        return tl::unexpected(answer->error());
    }
    if ((*answer)->truncated) {
        return fail(Errc::invalid_config,
                    fmt::format("{}: over the limit of {} bytes (openapi.max_spec_bytes)", address,
                                o.max_spec_bytes));
    }
    if ((*answer)->status != 200) {
        return fail(Errc::invalid_config,
                    fmt::format("{}: HTTP {} {} (redirects are not followed)", address,
                                (*answer)->status, (*answer)->reason));
    }
    return std::move((*answer)->body);
}

}  // namespace

Result<openapi::Catalog> OpenApiService::read() const {
    const auto started = std::chrono::steady_clock::now();
    const std::string spec = upstream_.openapi.spec.string();
    Result<openapi::Catalog> catalog = fail(Errc::invalid_config, "not read");
    if (spec.starts_with("https://") || spec.starts_with("http://")) {
        auto text = fetch_spec(spec, upstream_.openapi);
        if (!text) {
            return fail(Errc::invalid_config, fmt::format("upstream {}: openapi.spec: {}",
                                                          upstream_.name, text.error().detail));
        }
        catalog = openapi::parse(*text, spec, {}, options_);
    } else {
        catalog = openapi::load(upstream_.openapi.spec, options_);
    }
    if (!catalog) {
        return fail(Errc::invalid_config, fmt::format("upstream {}: openapi.spec: {}",
                                                      upstream_.name, catalog.error().detail));
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
    spdlog::info(
        "upstream {}: {} tools from {} ({} {}, OpenAPI {}; {} operations read, {} left "
        "out by filters, {} beyond max_tools, {} unusable; {} ms)",
        upstream_.name, catalog->operations.size(), upstream_.openapi.spec.string(), catalog->title,
        catalog->api_version, catalog->spec_version, catalog->operations_read,
        catalog->filtered_out, catalog->over_limit, catalog->skipped, ms);
    for (const auto& w : catalog->warnings) {
        spdlog::warn("upstream {}: {}: {}", upstream_.name, w.pointer, w.message);
    }
    return catalog;
}

Status OpenApiService::reload() {
    auto catalog = read();
    if (!catalog) {
        spdlog::error("upstream {}: the spec was not read again ({}); its tools stay as they were",
                      upstream_.name, catalog.error().detail);
        return tl::unexpected(catalog.error());
    }
    catalog_.store(std::make_shared<const openapi::Catalog>(std::move(*catalog)),
                   std::memory_order_release);
    return {};
}

transport::RestClient& OpenApiService::client(asio::io_context& io) {
    const std::lock_guard lock(mutex_);
    auto& c = clients_[&io];
    if (!c) {
        transport::RestClientOptions o;
        o.base = base_;
        o.tls = tls_.get();
        o.request_timeout = upstream_.openapi.timeout;
        o.connect_timeout = std::min(upstream_.openapi.timeout, std::chrono::milliseconds{10'000});
        o.max_response_bytes = upstream_.openapi.max_response_bytes;
        o.max_connections = upstream_.openapi.max_connections;
        c = std::make_unique<transport::RestClient>(io.get_executor(), std::move(o));
    }
    return *c;
}

void OpenApiService::authorize(transport::RestRequest& request) const {
    const auto& list = upstream_.openapi.auth;
    for (std::size_t i = 0; i < list.size() && i < secrets_.size(); ++i) {
        const auto& a = list[i];
        const std::string secret(reinterpret_cast<const char*>(secrets_[i].data()),
                                 secrets_[i].size());
        if (a.type == "bearer") {
            request.headers.emplace_back("Authorization", "Bearer " + secret);
        } else if (a.type == "basic") {
            request.headers.emplace_back(
                "Authorization", "Basic " + crypto::to_base64(as_bytes(a.username + ":" + secret)));
        } else if (a.in == "header") {
            request.headers.emplace_back(a.name, secret);
        } else if (a.in == "query") {
            const auto q = request.target.find('?');
            request.target += (q == std::string::npos ? "?" : "&") + encode_query(a.name) + "=" +
                              encode_query(secret);
        } else {
            const std::string cookie = encode_query(a.name) + "=" + encode_query(secret);
            const auto it = std::find_if(request.headers.begin(), request.headers.end(),
                                         [](const auto& h) { return h.first == "Cookie"; });
            if (it != request.headers.end()) {
                it->second += "; " + cookie;
            } else {
                request.headers.emplace_back("Cookie", cookie);
            }
        }
    }
}

namespace {

class OpenApiChannel final : public Channel {
  public:
    OpenApiChannel(asio::io_context& io, std::shared_ptr<OpenApiService> service,
                   ChannelEvents events)
        : io_(io), service_(std::move(service)), events_(std::move(events)) {}
    ~OpenApiChannel() override { *alive_ = false; }
    OpenApiChannel(const OpenApiChannel&) = delete;
    OpenApiChannel& operator=(const OpenApiChannel&) = delete;
    OpenApiChannel(OpenApiChannel&&) = delete;
    OpenApiChannel& operator=(OpenApiChannel&&) = delete;

    void send(const json::object& message) override {
        // Answers never come from inside send(), as from a real server.
        asio::post(io_, [this, alive = alive_, copy = json::value(message)]() mutable {
            if (*alive) {
                handle(std::move(copy));
            }
        });
    }
    void stop() override {}

  private:
    void deliver(json::object message) {
        if (!events_.on_message) {
            return;
        }
        if (auto m = mcp::classify(json::value(std::move(message)))) {
            events_.on_message(std::move(*m));
        }
    }

    void handle(json::value raw) {
        auto item = mcp::classify(std::move(raw));
        if (!item || !item->is_request()) {
            return;  // notifications (initialized, cancelled) need nothing
        }
        const mcp::Message& m = *item;
        const json::object* params = m.params();
        if (m.method == mcp::method::initialize) {
            const auto* requested =
                params != nullptr ? params->if_contains("protocolVersion") : nullptr;
            const auto catalog = service_->catalog();
            deliver(mcp::make_result(
                m.id,
                json::object{
                    {"protocolVersion", std::string(mcp::negotiate_version(
                                            requested != nullptr && requested->is_string()
                                                ? std::string_view(requested->get_string())
                                                : std::string_view{}))},
                    {"capabilities", json::object{{"tools", json::object{{"listChanged", false}}}}},
                    {"serverInfo",
                     json::object{
                         {"name", "openapi:" +
                                      (catalog->title.empty() ? service_->name() : catalog->title)},
                         {"version", catalog->api_version.empty() ? std::string("0")
                                                                  : catalog->api_version}}}}));
            return;
        }
        if (m.method == "ping") {
            deliver(mcp::make_result(m.id, json::object{}));
            return;
        }
        if (m.method == mcp::method::tools_list) {
            json::array tools;
            for (const auto& op : service_->catalog()->operations) {
                tools.push_back(op.tool_json());
            }
            deliver(mcp::make_result(m.id, json::object{{"tools", std::move(tools)}}));
            return;
        }
        if (m.method == mcp::method::tools_call) {
            call(m);
            return;
        }
        deliver(mcp::make_error(
            m.id, mcp::code::method_not_found,
            "Method not found: " + m.method + " (an OpenAPI upstream has tools only)"));
    }

    void call(const mcp::Message& m) {
        auto catalog = service_->catalog();
        const openapi::Operation* op = catalog->find(m.name);
        if (op == nullptr) {
            deliver(mcp::make_error(m.id, mcp::code::invalid_params, "Unknown tool: " + m.name));
            return;
        }
        const json::object* params = m.params();
        const auto* args = params != nullptr ? params->if_contains("arguments") : nullptr;
        static const json::object k_none;
        const json::object& arguments =
            args != nullptr && args->is_object() ? args->as_object() : k_none;
        // The arguments against the tool's own schema first: a clear error, no request.
        // The schemas learned are those of one catalog; a reload brings another.
        if (catalog != learned_from_) {
            schemas_ = policy::SchemaCache{};
            learned_from_ = catalog;
        }
        if (!schemas_.knows(m.name)) {
            schemas_.learn(m.name, op->tool_json());
        }
        if (const std::string why = schemas_.check(m.name, arguments); !why.empty()) {
            deliver(mcp::make_error(m.id, mcp::code::invalid_params,
                                    "Invalid arguments for " + m.name + ": " + why));
            return;
        }
        auto built = openapi::build_request(*op, arguments);
        if (!built) {
            deliver(
                mcp::make_error(m.id, mcp::code::invalid_params,
                                "Invalid arguments for " + m.name + ": " + built.error().detail));
            return;
        }
        transport::RestRequest request;
        request.method = built->method;
        request.target = service_->base_path() + built->path;
        if (!built->query.empty()) {
            request.target += "?" + built->query;
        }
        request.headers = std::move(built->headers);
        request.body = std::move(built->body);
        request.content_type = std::move(built->content_type);
        const std::string shown_url = service_->base_url() + built->path;  // never with credentials
        service_->authorize(request);
        service_->client(io_).send(
            std::move(request), [this, alive = alive_, id = m.id, catalog, op, name = m.name,
                                 shown_url](Result<transport::RestResponse> answer) {
                if (!*alive) {
                    return;
                }
                answered(id, *catalog, *op, name, shown_url, std::move(answer));
            });
    }

    void answered(const json::value& id, const openapi::Catalog& catalog,
                  const openapi::Operation& op, const std::string& name, const std::string& url,
                  Result<transport::RestResponse> answer) {
        if (!answer) {
            // The API could not be reached: a tool error the model can read.
            json::object r{
                {"content", json::array{json::object{
                                {"type", "text"},
                                {"text", fmt::format("{} {}: the API did not answer: {}", op.method,
                                                     op.path, answer.error().detail)}}}},
                {"isError", true}};
            deliver(mcp::make_result(id, std::move(r)));
            return;
        }
        openapi::HttpAnswer a;
        a.status = answer->status;
        a.reason = answer->reason;
        a.content_type = answer->content_type;
        a.body = std::move(answer->body);
        a.truncated = answer->truncated;
        json::object result = openapi::to_result(op, a, url);
        // "Servers MUST provide structured results that conform to this
        // schema": an answer that does not is an error the model can read,
        // not a result every client would refuse.
        if (op.output_schema && !result.contains("isError")) {
            // An answer to a call made before a reload is checked against its
            // own catalog's schema, without keeping it.
            policy::SchemaCache once;
            policy::SchemaCache& cache = &catalog == learned_from_.get() ? schemas_ : once;
            const std::string out_key = name + "#out";
            if (!cache.knows(out_key)) {
                cache.learn(out_key,
                            json::object{{"name", op.tool}, {"inputSchema", *op.output_schema}});
            }
            const auto* structured = result.if_contains("structuredContent");
            const std::string why = structured == nullptr
                                        ? std::string("no JSON object in the answer")
                                        : cache.check(out_key, *structured);
            if (!why.empty()) {
                std::string text = fmt::format(
                    "{} {}: HTTP {}: the API's answer does not match the response schema it "
                    "publishes ({})",
                    op.method, op.path, a.status, why);
                json::array content{json::object{{"type", "text"}, {"text", std::move(text)}}};
                for (auto& block : result.at("content").as_array()) {
                    content.push_back(std::move(block));
                }
                result = json::object{{"content", std::move(content)}, {"isError", true}};
            }
        }
        json::object upstream{{"status", a.status}};
        if (answer->tls) {
            upstream["tls"] = json::object{{"protocol", answer->tls->protocol},
                                           {"group", answer->tls->group},
                                           {"cipher", answer->tls->cipher},
                                           {"quantum_safe_group", answer->tls->quantum_safe_group}};
        }
        result["_meta"] = json::object{{"pqmcp/upstream_http", std::move(upstream)}};
        deliver(mcp::make_result(id, std::move(result)));
    }

    asio::io_context& io_;
    std::shared_ptr<OpenApiService> service_;
    ChannelEvents events_;
    policy::SchemaCache schemas_;
    std::shared_ptr<const openapi::Catalog> learned_from_;  // what schemas_ holds
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace

std::unique_ptr<Channel> open_openapi(asio::io_context& io, std::shared_ptr<OpenApiService> service,
                                      ChannelEvents events) {
    return std::make_unique<OpenApiChannel>(io, std::move(service), std::move(events));
}

}  // namespace pqmcp::gateway
