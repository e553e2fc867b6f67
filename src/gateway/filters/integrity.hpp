// Internal: tool integrity in the chain. On the way back, IntegrityReview
// puts every listed item through the Guard (pins, manifests, scanner) and
// withholds what it blocks or strips; on the way in, IntegrityCheck refuses
// calls of blocked items and of names the upstream never listed, fetching
// the upstream's list first when the session never saw it (the request
// pauses meanwhile). Both share the session's IntegrityState.
#pragma once

#include <array>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "../chain.hpp"
#include "../guard.hpp"

namespace pqmcp::gateway {

// What the session knows of the upstreams' items.
class IntegrityState final {
  public:
    // "<kind>:<gateway name>" of a tool or prompt an upstream listed.
    [[nodiscard]] bool listed(const std::string& key) const { return listed_.contains(key); }
    void note_listed(const std::string& key);
    // The verdict that blocks the item under `key` (null: not blocked).
    [[nodiscard]] const Verdict* blocked(const std::string& key) const;
    // Records a verdict; false when the item must not be served.
    bool note_verdict(const std::string& key, const Verdict& v);
    // Whether the list of `kind` of `link` was learned since it last changed.
    [[nodiscard]] bool fetched(ListKind kind, std::size_t link) const;
    void mark_fetched(ListKind kind, std::size_t link);
    // The upstream said its list changed: reviewed again before the next call.
    void forget(ListKind kind, std::size_t link, const std::string& prefix);
    // Calls waiting for a listing of `link` under way.
    std::vector<std::function<void()>>& waiting(ListKind kind, std::size_t link);

    static constexpr std::size_t k_max_listed = 20'000;

  private:
    std::set<std::string> listed_;
    std::map<std::string, Verdict> blocked_;
    std::array<std::set<std::size_t>, 2> fetched_;  // tools, prompts
    std::array<std::map<std::size_t, std::vector<std::function<void()>>>, 2> waiting_;
};

// Fetches an upstream's list for the session's own review: every page, run
// through the list chain without being served, then `then` (also when the
// upstream cannot be asked).
class Lister {
  public:
    Lister() = default;
    virtual ~Lister() = default;
    Lister(const Lister&) = delete;
    Lister& operator=(const Lister&) = delete;
    Lister(Lister&&) = delete;
    Lister& operator=(Lister&&) = delete;
    virtual void fetch(std::size_t link, ListKind kind, std::function<void()> then) = 0;
};

class IntegrityCheck final : public RequestFilter {
  public:
    IntegrityCheck(IntegrityState& state, const Upstreams& upstreams, Lister& lister,
                   const std::string& log_id)
        : state_(state), upstreams_(upstreams), lister_(lister), log_id_(log_id) {}
    [[nodiscard]] std::string_view name() const noexcept override { return "integrity"; }
    Step on_request(const std::shared_ptr<Exchange>& x, RequestChain& chain) override;

  private:
    Step refuse_if_blocked(Exchange& x, const std::string& key, std::string_view what) const;

    IntegrityState& state_;
    const Upstreams& upstreams_;
    Lister& lister_;
    const std::string& log_id_;
};

class IntegrityReview final : public ListFilter {
  public:
    IntegrityReview(IntegrityState& state, Guard* guard, const Upstreams& upstreams)
        : state_(state), guard_(guard), upstreams_(upstreams) {}
    [[nodiscard]] std::string_view name() const noexcept override { return "integrity"; }
    void on_items(Listing& listing) override;

  private:
    IntegrityState& state_;
    Guard* guard_;  // null: integrity turned off (names are still noted)
    const Upstreams& upstreams_;
};

// The key a verdict is kept under: "tool:PREFIXname", and for a resource
// "resource:URI" with the URI as reads are routed (normalized).
[[nodiscard]] std::string verdict_key(std::string_view kind, const std::string& prefix,
                                      const boost::json::object& item);

}  // namespace pqmcp::gateway
