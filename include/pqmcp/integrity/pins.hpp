// Pins of tool, prompt and resource-template definitions: the digest of each
// definition's canonical form (RFC 8785) the first time an upstream served
// it, in the gateway's state database (SQLite, WAL). A later definition with
// another digest is a rug pull until someone approves it.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <boost/json/object.hpp>

#include "pqmcp/core/error.hpp"
#include "pqmcp/integrity/errors.hpp"

namespace pqmcp::integrity {

struct PinKey {
    std::string upstream;
    std::string kind;  // "tool", "prompt", "resourceTemplate"
    std::string name;  // the upstream's own name (for templates: the uriTemplate)

    friend bool operator<(const PinKey& a, const PinKey& b) {
        return std::tie(a.upstream, a.kind, a.name) < std::tie(b.upstream, b.kind, b.name);
    }
};

struct PinCheck {
    enum class State {
        pinned_now,  // first seen: pinned
        unchanged,   // matches the pin
        changed,     // differs from the pin: a rug pull, awaiting approval
    };
    State state = State::unchanged;
    std::string digest;      // of the definition seen
    std::string pinned;      // the pinned digest
    std::string first_seen;  // when the pin was made (UTC, RFC 3339)
    std::string diff;        // state changed: what changed, one line per JSON Pointer
};

struct PinRecord {
    PinKey key;
    std::string digest;
    std::string first_seen;
    std::string approved;        // when the current pin was approved ("" for first sight)
    std::string pending_digest;  // a changed definition awaiting approval ("" if none)
    std::string pending_seen;
};

class PinStore final {
  public:
    // Opens (creating if missing) the database; ":memory:" for tests.
    [[nodiscard]] static Result<PinStore> open(const std::filesystem::path& file);

    // Compares a definition with its pin; pins it on first sight and records
    // a changed one as pending (for `approve`).
    [[nodiscard]] Result<PinCheck> check(const PinKey& key, const boost::json::object& definition);

    // Makes the pending definitions the pins: of one upstream, optionally
    // one name (any kind). Returns how many were approved.
    [[nodiscard]] Result<std::size_t> approve(std::string_view upstream,
                                              std::optional<std::string_view> name);

    [[nodiscard]] Result<std::vector<PinRecord>> list(std::optional<std::string_view> upstream);

    PinStore(const PinStore&) = delete;
    PinStore& operator=(const PinStore&) = delete;
    PinStore(PinStore&&) noexcept;
    PinStore& operator=(PinStore&&) noexcept;
    ~PinStore();

  private:
    struct Db;
    explicit PinStore(std::unique_ptr<Db> db);
    std::unique_ptr<Db> db_;
};

// A readable difference of two JSON values: one line per changed JSON Pointer
// ("~ /description: \"old\" -> \"new\"", "+ /inputSchema/properties/x: ...",
// "- /annotations: ..."), values cut at `max_value` bytes, at most
// `max_lines` lines.
[[nodiscard]] std::string json_diff(const boost::json::value& before,
                                    const boost::json::value& after, std::size_t max_value = 160,
                                    std::size_t max_lines = 40);

// Now, as UTC RFC 3339 with seconds ("2026-11-24T09:30:00Z").
[[nodiscard]] std::string utc_now();

}  // namespace pqmcp::integrity
