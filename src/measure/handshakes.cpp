// Full and resumed TLS handshakes per profile, between two pqmcp contexts
// set up as serve and connect set them up (pinned peers, raw public keys,
// mutual authentication, rotating ticket keys).
#include <string>
#include <utility>

#include "pqmcp/identity/identity.hpp"
#include "pqmcp/measure/handshake.hpp"
#include "pqmcp/measure/measure.hpp"
#include "pqmcp/tls/context.hpp"
#include "pqmcp/tls/profile.hpp"
#include "rows.hpp"

namespace pqmcp::measure {
namespace {

struct Pair {
    crypto::SslCtxPtr server;
    crypto::SslCtxPtr client;
};

Result<Pair> contexts(const tls::Profile& profile, const identity::Identity& server_id,
                      const identity::Identity& client_id, bool tickets) {
    tls::ContextOptions so;
    so.profile = profile.id;
    so.identity = &server_id;
    so.verify.pinned = {client_id.id};
    so.tickets.enabled = tickets;
    tls::ContextOptions co;
    co.profile = profile.id;
    co.identity = &client_id;
    co.verify.pinned = {server_id.id};
    auto server = tls::make_server_context(so);
    if (!server) {
        return fail(Errc::setup_failed, "server context: " + server.error().message());
    }
    auto client = tls::make_client_context(co);
    if (!client) {
        return fail(Errc::setup_failed, "client context: " + client.error().message());
    }
    return Pair{std::move(*server), std::move(*client)};
}

Result<Row> handshake_row(const tls::Profile& profile, const identity::Identity& server_id,
                          const identity::Identity& client_id, bool resumed, const Budget& budget,
                          const Progress& progress) {
    const std::string_view groups = profile.groups;
    const std::string group(groups.substr(0, groups.find(':')));
    const std::string signature(crypto::openssl_name(profile.identity_algorithms.front()));
    Row row;
    row.name = std::string(profile.name) + " (" + group + " + " + signature + ") " +
               (resumed ? "resumed" : "full");
    row.label = std::string(profile.name) + (resumed ? " resumed" : " full");
    row.quantum_safe = !profile.classical;
    auto pair = contexts(profile, server_id, client_id, resumed);
    if (!pair) {
        return tl::unexpected(pair.error());
    }
    tls::SessionPtr session;
    HandshakeTweaks tweaks;
    if (resumed) {
        HandshakeTweaks first;
        first.want_session = true;
        auto out = handshake_once(pair->client.get(), pair->server.get(), first);
        if (!out.ok || !out.session) {
            return fail(Errc::setup_failed, row.name + ": no session to resume: " + out.error);
        }
        session = std::move(out.session);
        tweaks.resume = session.get();
    }
    // One handshake outside the timing, for its byte counts and to check it.
    auto sample = handshake_once(pair->client.get(), pair->server.get(), tweaks);
    if (!sample.ok || sample.resumed != resumed) {
        return fail(Errc::operation_failed,
                    row.name + ": " + (sample.ok ? "resumption did not happen" : sample.error));
    }
    row.bytes_out = sample.client_to_server;
    row.bytes_in = sample.server_to_client;
    row.bytes = row.bytes_out + row.bytes_in;
    row.note = std::to_string(row.bytes_out) + " B client to server, " +
               std::to_string(row.bytes_in) + " B back";
    RowBuilder builder(budget, progress, row);
    if (auto timed = builder.part("handshake", 1,
                                  [&] {
                                      const auto out = handshake_once(pair->client.get(),
                                                                      pair->server.get(), tweaks);
                                      return out.ok && out.resumed == resumed;
                                  });
        !timed) {
        return tl::unexpected(timed.error());
    }
    return row;
}

}  // namespace

Result<Section> handshakes(const Budget& budget, const Progress& progress) {
    Section section;
    section.id = "handshakes";
    section.title = "TLS 1.3 handshakes, mutually authenticated";
    section.time_meaning = "one handshake, both ends' CPU in one thread";
    section.bytes_meaning = "on the wire: TLS records both ways";
    for (const auto& profile : tls::all_profiles()) {
        identity::KeygenOptions keygen;
        keygen.algorithm = profile.identity_algorithms.front();
        keygen.names = {"localhost"};
        auto server_id = identity::generate(keygen);
        auto client_id = identity::generate(keygen);
        if (!server_id || !client_id) {
            return fail(Errc::setup_failed,
                        "identity: " + (server_id ? client_id : server_id).error().message());
        }
        for (const bool resumed : {false, true}) {
            auto row = handshake_row(profile, *server_id, *client_id, resumed, budget, progress);
            if (!row) {
                return tl::unexpected(row.error());
            }
            section.rows.push_back(std::move(*row));
        }
    }
    return section;
}

}  // namespace pqmcp::measure
