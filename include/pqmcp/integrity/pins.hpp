// Pins of tool, prompt and resource-template definitions: the digest of each
// definition's canonical form (RFC 8785) the first time an upstream served
// it, in the gateway's state database (SQLite, WAL). A later definition with
// another digest is a rug pull until someone approves it.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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

// A pin as a backend stores it.
struct PinRow {
    std::string digest;
    std::string definition;  // canonical JSON of the pinned definition
    std::string first_seen;
    std::string pending_digest;
};

// Where pins are kept: a local SQLite file (PinStore::open), or PostgreSQL
// for a tier of replicas (src/cluster). A store calls its backend one call
// at a time.
class PinBackend {
  public:
    PinBackend() = default;
    PinBackend(const PinBackend&) = delete;
    PinBackend& operator=(const PinBackend&) = delete;
    PinBackend(PinBackend&&) = delete;
    PinBackend& operator=(PinBackend&&) = delete;
    virtual ~PinBackend() = default;
    // Whether another writer may have changed pins since the last call (the
    // store then forgets what it cached).
    [[nodiscard]] virtual Result<bool> changed() = 0;
    [[nodiscard]] virtual Result<std::optional<PinRow>> find(const PinKey& key) = 0;
    // False when another writer pinned the key first.
    [[nodiscard]] virtual Result<bool> insert(const PinKey& key, std::string_view digest,
                                              std::string_view definition,
                                              std::string_view first_seen) = 0;
    [[nodiscard]] virtual Status set_pending(const PinKey& key, std::string_view digest,
                                             std::string_view definition,
                                             std::string_view seen) = 0;
    [[nodiscard]] virtual Result<std::size_t> approve(std::string_view upstream,
                                                      std::optional<std::string_view> name,
                                                      std::string_view when) = 0;
    [[nodiscard]] virtual Result<std::vector<PinRecord>> list(
        std::optional<std::string_view> upstream) = 0;
    // For logs: "sqlite", "postgresql host=... dbname=...".
    [[nodiscard]] virtual std::string describe() const = 0;
};

// Thread-safe: every call holds the store's lock.
class PinStore final {
  public:
    // Opens (creating if missing) the SQLite database; ":memory:" for tests.
    [[nodiscard]] static Result<PinStore> open(const std::filesystem::path& file);
    explicit PinStore(std::unique_ptr<PinBackend> backend);
    [[nodiscard]] std::string describe() const;

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
