// The known_peers file: the peers this node pins, one per line.
//
//   # comment
//   <peer id> <name> <added YYYY-MM-DD>
//
// Fields are separated by spaces or tabs. A name is 1-64 characters of
// [A-Za-z0-9._@-]. Ids and names are unique within a file.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pqmcp/core/error.hpp"
#include "pqmcp/identity/identity.hpp"

namespace pqmcp::identity {

struct KnownPeer {
    PeerId id;
    std::string name;
    std::string added;  // YYYY-MM-DD
};

class KnownPeers final {
  public:
    // Errors name the source and the line number ("peers.txt:3: ...").
    [[nodiscard]] static Result<KnownPeers> parse(std::string_view text,
                                                  std::string_view source = "known_peers");
    [[nodiscard]] static Result<KnownPeers> load(const std::filesystem::path& file);

    // Errc::duplicate_peer if the id or the name is already present; an empty
    // `added` becomes today's date (UTC).
    [[nodiscard]] Status add(KnownPeer peer);
    [[nodiscard]] const KnownPeer* find(const PeerId& id) const noexcept;
    [[nodiscard]] const KnownPeer* find_by_name(std::string_view name) const noexcept;
    [[nodiscard]] const std::vector<KnownPeer>& peers() const noexcept { return peers_; }

    [[nodiscard]] std::string serialize() const;
    // Atomic replace (write to a temporary file, then rename).
    [[nodiscard]] Status save(const std::filesystem::path& file) const;

  private:
    std::vector<KnownPeer> peers_;
};

[[nodiscard]] bool is_valid_peer_name(std::string_view name) noexcept;
[[nodiscard]] std::string today_utc();

}  // namespace pqmcp::identity
