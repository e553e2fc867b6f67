// tools/call latency through a running gateway (Streamable HTTP, PQ TLS with
// the gateway pinned), one call in flight.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include <optional>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "pqmcp/identity/identity.hpp"
#include "pqmcp/measure/calls.hpp"
#include "pqmcp/measure/measure.hpp"
#include "pqmcp/tls/context.hpp"
#include "pqmcp/transport/http_client.hpp"

namespace pqmcp::measure {

namespace asio = boost::asio;
namespace json = boost::json;

Result<Section> gateway_calls(const GatewayTarget& target, const Progress& progress) {
    auto url = transport::parse_url(target.url);
    if (!url) {
        return fail(Errc::gateway_failed, "--gateway: " + url.error().message());
    }
    if (!target.arguments.empty()) {
        boost::system::error_code ec;
        const auto parsed = json::parse(target.arguments, ec);
        if (ec || !parsed.is_object()) {
            return fail(Errc::gateway_failed, "--arguments must be a JSON object");
        }
    }
    std::optional<identity::Identity> own;
    crypto::SslCtxPtr ctx;
    if (url->tls) {
        if (target.pin.empty()) {
            return fail(Errc::gateway_failed, "an https gateway needs --pin (its peer id)");
        }
        auto peer = identity::PeerId::parse(target.pin);
        if (!peer) {
            return fail(Errc::gateway_failed, "--pin: " + peer.error().message());
        }
        identity::KeygenOptions keygen;
        auto id = target.identity.empty() ? identity::generate(keygen)
                                          : identity::load_or_create(target.identity, keygen);
        if (!id) {
            return fail(Errc::gateway_failed, "identity: " + id.error().message());
        }
        own = std::move(*id);
        tls::ContextOptions c;
        c.identity = &*own;
        c.verify.pinned.push_back(*peer);
        auto made = tls::make_client_context(c);
        if (!made) {
            return fail(Errc::gateway_failed, made.error().message());
        }
        ctx = std::move(*made);
    }
    if (progress) {
        progress(fmt::format("tools/call {} through {} ({} calls after {} to warm up)", target.tool,
                             target.url, target.requests, target.warmup));
    }
    asio::io_context io;
    CallOptions options;
    options.tool = target.tool;
    options.arguments = target.arguments;
    options.requests = target.requests;
    options.warmup = target.warmup;
    options.concurrency = 1;
    std::function<void(json::object)> send;
    CallDriver driver(
        options, [&send](json::object m) { send(std::move(m)); }, [&io] { io.stop(); });
    transport::HttpClientOptions h;
    h.url = *url;
    h.tls = ctx.get();
    h.max_connections = 1;
    h.listen = false;
    h.reinitialize = false;
    std::string failure;
    transport::HttpClientCallbacks cb;
    cb.on_message = [&driver](const mcp::Message& m) { driver.on_message(m); };
    cb.on_failure = [&io, &failure](const json::object&, const Error& e, const json::object*) {
        failure = e.message();
        io.stop();
    };
    transport::McpHttpClient client(io.get_executor(), h, std::move(cb));
    send = [&client](json::object m) { client.send(std::move(m)); };
    asio::steady_timer deadline(io, target.deadline);
    bool timed_out = false;
    deadline.async_wait([&io, &timed_out](const boost::system::error_code& ec) {
        if (!ec) {
            timed_out = true;
            io.stop();
        }
    });
    driver.start();
    io.run();
    const auto r = driver.results();
    if (!driver.finished()) {
        if (!failure.empty()) {
            return fail(Errc::gateway_failed, failure);
        }
        if (!r.first_error.empty()) {
            return fail(Errc::gateway_failed, "the gateway answered " + r.first_error);
        }
        return fail(timed_out ? Errc::timeout : Errc::gateway_failed,
                    fmt::format("{} of {} calls answered", r.done, target.requests));
    }
    if (r.errors > 0) {
        return fail(Errc::gateway_failed, fmt::format("{} of {} calls failed; the first: {}",
                                                      r.errors, r.done, r.first_error));
    }
    Section section;
    section.id = "gateway";
    section.title = "tools/call through the gateway";
    section.time_meaning = "round trip of one call, one in flight (median; p10 and p90 beside)";
    section.bytes_meaning = "";
    Row row;
    row.name = "tools/call " + target.tool + " via " + target.url;
    row.label = "tools/call";
    row.quantum_safe = url->tls;
    row.timing.us = r.percentile(0.50);
    row.timing.min_us = r.percentile(0.10);
    row.timing.max_us = r.percentile(0.90);
    row.timing.operations = r.done;
    row.note = fmt::format("p99 {:.0f} us, {:.0f} calls/s", r.percentile(0.99), r.rate());
    row.parts.push_back(Part{"tools/call", row.timing});
    section.rows.push_back(std::move(row));
    return section;
}

}  // namespace pqmcp::measure
