// JSON-RPC 2.0 for MCP: a bounded parser that classifies each message and
// extracts, once, the fields the layers above route on (method, id,
// params.name, params.uri), and builders for results and errors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <tl/expected.hpp>

#include "pqmcp/core/error.hpp"

namespace pqmcp::mcp {

enum class Errc {
    parse_error = 1,    // not JSON (or not UTF-8)
    invalid_request,    // JSON, but not a JSON-RPC 2.0 message (or an empty batch)
    too_large,          // more bytes than Limits::max_message_bytes
    too_deep,           // nested deeper than Limits::max_depth
    batch_too_long,     // more elements than Limits::max_batch
    batch_not_allowed,  // a batch where the protocol version has none
};

const std::error_category& mcp_category() noexcept;
inline std::error_code make_error_code(Errc e) noexcept {
    return {static_cast<int>(e), mcp_category()};
}

// JSON-RPC 2.0 error codes (section 5.1) and pqmcp's own, from the range the
// specification reserves for implementation-defined server errors.
namespace code {
inline constexpr int parse_error = -32700;
inline constexpr int invalid_request = -32600;
inline constexpr int method_not_found = -32601;
inline constexpr int invalid_params = -32602;
inline constexpr int internal_error = -32603;
// The upstream that owns the request did not answer in time.
inline constexpr int upstream_timeout = -32001;
// The upstream is gone (process exited, connection lost) or could not start.
inline constexpr int upstream_unavailable = -32002;
// The gateway cannot be reached (pqmcp connect: TLS, pinning, network).
inline constexpr int gateway_unreachable = -32003;
// A limit was reached (sessions, children, pending requests).
inline constexpr int over_limit = -32004;
// (-32010 is the policy's denial, pqmcp/policy/policy.hpp.)
// Tool integrity refused the call: the tool's definition changed since it was
// pinned (a rug pull) or the poisoning scanner blocked it.
inline constexpr int tool_blocked = -32011;
// pqmcp connect --strict-tools: a list without a valid gateway signature.
inline constexpr int unverified_list = -32012;
// The audit trail cannot be written and audit.on_failure is refuse: the
// gateway does not act without a record.
inline constexpr int audit_unavailable = -32013;
// 2026-07-28: an Mcp-Method or Mcp-Name header that disagrees with the body
// (or is missing), and a protocol version the server does not speak.
inline constexpr int header_mismatch = -32020;
inline constexpr int unsupported_version = -32022;
}  // namespace code

// The JSON-RPC code a parse failure is answered with.
[[nodiscard]] int jsonrpc_code(const Error& error) noexcept;

// Bounds on every message read from a peer. Defaults are documented in
// docs/gateway.md; every one is configurable.
struct Limits {
    std::size_t max_message_bytes = 4U << 20U;  // 4 MiB
    std::size_t max_depth = 64;                 // arrays and objects nested
    std::size_t max_batch = 64;                 // elements of one batch
};

enum class Kind { request, notification, response, error };

// One JSON-RPC message, validated, with its routing fields extracted.
struct Message {
    boost::json::object body;  // the whole message
    Kind kind = Kind::notification;
    boost::json::value id;  // string or integer; null for notifications (and some errors)
    std::string method;     // requests and notifications
    std::string name;       // params.name when it is a string (tools/call, prompts/get)
    std::string uri;        // params.uri when it is a string (resources/*)
    // A 2026-07-28 request over Streamable HTTP: its Mcp-Param-{Name} headers
    // ({Name} as sent, the raw value), for the gateway to check against the
    // arguments and pass on; nullopt for a message that came another way.
    std::optional<std::vector<std::pair<std::string, std::string>>> param_headers;

    [[nodiscard]] bool is_request() const noexcept { return kind == Kind::request; }
    [[nodiscard]] bool is_notification() const noexcept { return kind == Kind::notification; }
    [[nodiscard]] bool is_response() const noexcept {
        return kind == Kind::response || kind == Kind::error;
    }
    // params as an object (nullptr if absent or not an object).
    [[nodiscard]] const boost::json::object* params() const noexcept;
    [[nodiscard]] boost::json::object* params() noexcept;
    // params._meta as an object (nullptr if absent or not an object).
    [[nodiscard]] const boost::json::object* meta() const noexcept;
    [[nodiscard]] boost::json::object* meta() noexcept;
    // params._meta.progressToken (nullptr if absent).
    [[nodiscard]] const boost::json::value* progress_token() const noexcept;
};

// An element of a batch (or a single message) that is JSON but not a valid
// JSON-RPC message: answered with -32600 and `id` (null if it had none).
struct Invalid {
    boost::json::value id;
    std::string reason;
};

using Item = tl::expected<Message, Invalid>;

struct Parsed {
    std::vector<Item> items;  // one for a single message
    bool batch = false;
};

// Parses one HTTP body or one stdio line. The whole input fails (Errc) when it
// is too large, not JSON, too deep, an empty or too long batch, or neither an
// object nor an array; otherwise each element is a Message or an Invalid.
[[nodiscard]] Result<Parsed> parse(std::string_view text, const Limits& limits);

// Validates one JSON value as a JSON-RPC message (takes it apart; no copy).
[[nodiscard]] Item classify(boost::json::value&& value);

// Builders (the "jsonrpc":"2.0" member included).
[[nodiscard]] boost::json::object make_request(const boost::json::value& id,
                                               std::string_view method, boost::json::object params);
[[nodiscard]] boost::json::object make_notification(std::string_view method,
                                                    boost::json::object params);
[[nodiscard]] boost::json::object make_result(const boost::json::value& id,
                                              boost::json::value result);
[[nodiscard]] boost::json::object make_error(const boost::json::value& id, int error_code,
                                             std::string_view message,
                                             boost::json::value data = nullptr);
// The error response for a whole-input parse failure (id null).
[[nodiscard]] boost::json::object make_error(const Error& parse_failure);
// The error response for an invalid element.
[[nodiscard]] boost::json::object make_error(const Invalid& invalid);

// Compact serialisation without a trailing newline; never contains a raw newline
// (JSON escapes them in strings), so it is safe for newline-delimited stdio.
[[nodiscard]] std::string serialize(const boost::json::object& message);
[[nodiscard]] std::string serialize(const boost::json::value& message);

// A message's params, and its params._meta, as objects to write into (made
// objects when missing or of another type).
[[nodiscard]] boost::json::object& writable_params(boost::json::object& message);
[[nodiscard]] boost::json::object& writable_meta(boost::json::object& message);

// The protocol version a message of the stateless revision names in
// params._meta ("io.modelcontextprotocol/protocolVersion"); "" when none.
[[nodiscard]] std::string_view envelope_version(const boost::json::object& message) noexcept;

// A JSON-RPC id for display in logs: "7", "\"abc\"".
[[nodiscard]] std::string id_text(const boost::json::value& id);

}  // namespace pqmcp::mcp

template <>
struct std::is_error_code_enum<pqmcp::mcp::Errc> : std::true_type {};
