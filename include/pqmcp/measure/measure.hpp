// What `pqmcp bench` measures on the user's machine, side by side in one run:
// key exchanges and signatures (post-quantum next to classical), full and
// resumed TLS handshakes per profile, and optionally tools/call through a
// gateway; and the report it writes (terminal table, bench.json, HTML chart).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "pqmcp/core/error.hpp"

namespace pqmcp::measure {

enum class Errc {
    operation_failed = 1,  // an operation under measurement failed (details in Error::detail)
    setup_failed,          // keys, contexts or a session could not be prepared
    gateway_failed,        // the gateway could not be reached or refused the calls
    timeout,               // the gateway run passed its deadline
};
const std::error_category& measure_category() noexcept;
inline std::error_code make_error_code(Errc e) noexcept {
    return {static_cast<int>(e), measure_category()};
}

// How long to measure each operation: `rounds` batches of about `batch`
// each, after one calibration batch. The figure is the median of the rounds'
// per-operation times; the spread (min, max) is kept beside it.
struct Budget {
    std::chrono::milliseconds batch{250};
    int rounds = 5;
};
[[nodiscard]] Budget quick_budget() noexcept;  // 40 ms batches, 3 rounds

struct Timing {
    double us = 0;  // median over the rounds, one operation
    double min_us = 0;
    double max_us = 0;
    std::uint64_t operations = 0;  // all rounds together
};

// Runs `op` (false: it failed) in timed batches; measure_error if it fails.
[[nodiscard]] Result<Timing> time_operation(const std::function<bool()>& op, const Budget& budget);

struct Part {
    std::string operation;  // "keygen", "encaps", "sign", ...
    Timing timing;
};

struct Row {
    std::string name;   // "ML-KEM-768", "pq-hybrid (X25519MLKEM768 + ML-DSA-65)"
    std::string label;  // short, for the chart's axis: "ML-KEM-768", "pq-hybrid full"
    bool quantum_safe = false;
    Timing timing;                // one exchange / signature+verification / handshake
    std::vector<Part> parts;      // what `timing` is made of
    std::uint64_t bytes = 0;      // on the wire; see Section::bytes_meaning
    std::uint64_t bytes_out = 0;  // handshakes: client to server
    std::uint64_t bytes_in = 0;   // handshakes: server to client
    std::string note;
};

struct Section {
    std::string id;  // "key_exchange", "signatures", "handshakes", "gateway"
    std::string title;
    std::string time_meaning;
    std::string bytes_meaning;
    std::vector<Row> rows;
};

struct Report {
    std::string pqmcp_version;
    std::string openssl_version;
    std::string cpu;
    unsigned cores = 0;
    std::string started;  // UTC, ISO 8601
    bool quick = false;
    Budget budget;
    std::vector<Section> sections;
};

// Progress: one line per step as it starts ("[3/27] ML-KEM-768 encaps").
using Progress = std::function<void(const std::string&)>;

// Key exchange: ML-KEM-512/768/1024, X25519, ECDH P-256, RSA-3072 (key
// transport with OAEP). Time: both ends of one exchange. Bytes: what crosses
// the wire (key share or public key, plus ciphertext or reply share).
[[nodiscard]] Result<Section> key_exchanges(const Budget& budget, const Progress& progress);
// Signatures: ML-DSA-44/65/87, Ed25519, ECDSA P-256, RSA-3072 (PSS). Time:
// one signature plus its verification. Bytes: public key (SubjectPublicKeyInfo)
// plus signature.
[[nodiscard]] Result<Section> signatures(const Budget& budget, const Progress& progress);
// Mutually authenticated TLS 1.3 handshakes between two pqmcp contexts, in
// one thread over a socket pair, per profile: full (raw public keys between
// pinned peers) and resumed (session ticket, psk_dhe_ke). Time: the CPU of
// both ends. Bytes: TLS records both ways.
[[nodiscard]] Result<Section> handshakes(const Budget& budget, const Progress& progress);

struct GatewayTarget {
    std::string url;       // https://host:port/mcp (or http:// for a plain one)
    std::string pin;       // the gateway's peer id (https)
    std::string identity;  // directory of the client identity; empty: a fresh one
    std::string tool = "echo";
    std::string arguments;  // JSON object; empty: the demo tools' own
    std::size_t requests = 2000;
    std::size_t warmup = 200;
    std::chrono::seconds deadline{120};
};
// tools/call round trips through a gateway, one in flight; the row's timing
// is the median latency (min = p10, max = p90) and the note p99 and rate.
[[nodiscard]] Result<Section> gateway_calls(const GatewayTarget& target, const Progress& progress);

// The report as JSON (bench.json), as a terminal table, and as one HTML page
// that needs nothing else: inline SVG charts (bars of time on a log scale, a
// line of bytes on a second axis), tables, no scripts, no network.
[[nodiscard]] std::string to_json(const Report& report);
[[nodiscard]] std::string to_table(const Report& report);
[[nodiscard]] std::string to_html(const Report& report);
// One section's chart as a standalone SVG image: a bar of time per row on a
// log scale (left axis, whole decades from one below the fastest), a line of
// bytes (right axis, from zero). Rows with quantum_safe get the PQ colour.
[[nodiscard]] std::string chart_svg(const Section& section);

// Facts about this machine and build for the report's header.
void describe_machine(Report& report);

}  // namespace pqmcp::measure

template <>
struct std::is_error_code_enum<pqmcp::measure::Errc> : std::true_type {};
