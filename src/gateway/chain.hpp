// Internal: the filter chain of a gateway session, in both directions (the
// model is Envoy's HTTP filter chain: StreamDecoderFilter on the way in,
// StreamEncoderFilter on the way out, a factory that builds one chain per
// session in one declared order; see docs/design.md).
//
// A request goes through RequestFilters in order; each sees the parsed
// request and its Exchange and answers next (go on), done (it answered or
// handed the request on itself), deny (the chain answers the error) or pause
// (it will resume the chain later, once: a listing to fetch, a person to
// ask). A list result on its way back goes through ListFilters, which mark,
// rename and learn from the upstreams' items; the chain merges what is kept
// and the filters see the result once more before it is served.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "pqmcp/mcp/jsonrpc.hpp"
#include "pqmcp/policy/behaviour.hpp"
#include "pqmcp/policy/policy.hpp"
#include "pqmcp/transport/http_server.hpp"

namespace pqmcp::gateway {

// What the gateway did with a request, from the filters to its trace (audit
// record, metrics, dashboard). The audit spells each as to_string() does.
enum class Disposition : std::uint8_t {
    allow,          // went on (also a shadow-mode rule that would have refused)
    deny,           // refused by a policy rule or the default
    ask,            // a person is being asked
    ask_approved,   // a person approved it
    ask_denied,     // a person did not approve it, or could not be asked
    blocked,        // tool integrity blocked the item
    invalid,        // not a valid call: unknown, unlisted, bad arguments or URI
    refused_audit,  // the audit trail cannot be written (audit.on_failure: refuse)
};
[[nodiscard]] std::string_view to_string(Disposition d) noexcept;
// Refused by the gateway: anything but allow and ask_approved.
[[nodiscard]] bool refused(Disposition d) noexcept;

struct Decision {
    Disposition disposition = Disposition::allow;
    std::string rule;    // the policy rule that decided ("" for none or the default)
    std::string reason;  // the policy's reason (for ask: what the person is asked about)
    policy::Mode mode = policy::Mode::enforce;
};

// One client request on its way through the chain.
struct Exchange {
    mcp::Message message;
    transport::StreamId stream = 0;
    // The policy in force when it arrived (null: none); a reload does not
    // change the decision of a request under way.
    std::shared_ptr<const policy::Policy> policy;
    std::optional<std::size_t> link;  // the upstream it goes to (route)
    std::string own_name;             // a tool's or prompt's name at that upstream (route)
    Decision decision;
    policy::Behaviour::Assessment assessment;  // behaviour's findings, for the policy
    // Runs on a successful response from the upstream (policy: data flow).
    std::function<void(const mcp::Message&)> on_success;
    std::size_t position = 0;  // the filter it is at (the chain's)
};

struct Step {
    enum class Kind : std::uint8_t { next, done, deny, pause };
    Kind kind = Kind::next;
    int code = 0;  // deny: the JSON-RPC error
    std::string message;
    boost::json::object data;

    [[nodiscard]] static Step next() { return {}; }
    [[nodiscard]] static Step done() { return {Kind::done, 0, {}, {}}; }
    [[nodiscard]] static Step pause() { return {Kind::pause, 0, {}, {}}; }
    [[nodiscard]] static Step deny(int code, std::string message, boost::json::object data = {}) {
        return {Kind::deny, code, std::move(message), std::move(data)};
    }
};

class RequestChain;

class RequestFilter {
  public:
    RequestFilter() = default;
    virtual ~RequestFilter() = default;
    RequestFilter(const RequestFilter&) = delete;
    RequestFilter& operator=(const RequestFilter&) = delete;
    RequestFilter(RequestFilter&&) = delete;
    RequestFilter& operator=(RequestFilter&&) = delete;

    [[nodiscard]] virtual std::string_view name() const noexcept = 0;
    // A filter that pauses keeps `x` and calls chain.resume(x, step) once.
    virtual Step on_request(const std::shared_ptr<Exchange>& x, RequestChain& chain) = 0;
};

// The lists the gateway merges, and how each is named.
enum class ListKind : std::uint8_t { tools, prompts, resources, templates };
struct ListSpec {
    ListKind kind;
    std::string_view method;      // tools/list, ...
    std::string_view key;         // the result's array: tools, ...
    std::string_view item;        // an item's kind for integrity: tool, ...
    std::string_view capability;  // the upstream capability that offers it
};
[[nodiscard]] const ListSpec& spec(ListKind kind) noexcept;

// The items of one list from the upstreams, on their way to the client.
struct Listing {
    enum class Mark : std::uint8_t {
        keep,      // served
        withheld,  // not served, but still known (integrity blocked or stripped it)
        dropped,   // not served and not known (a duplicate, not visible to the caller)
    };
    const ListSpec* spec = nullptr;
    // False for a listing the gateway fetched for its own review before a
    // call: learned from, never served (nor signed).
    bool served = true;
    std::vector<std::size_t> links;         // the upstreams it covers
    std::vector<boost::json::array> items;  // by link, as the upstreams listed them
    std::vector<std::vector<Mark>> marks;   // by link and item

    Listing(const ListSpec& s, std::size_t upstreams);
    // Calls f(link, index, item) for each item that is an object and is kept
    // (or, with `withheld`, kept or withheld).
    void each(const std::function<void(std::size_t, std::size_t, boost::json::object&)>& f,
              bool withheld = false);
    void mark(std::size_t link, std::size_t index, Mark m) { marks[link][index] = m; }
    // Moves the kept items out, by link then in their upstream's order.
    [[nodiscard]] boost::json::array take_kept();
};

class ListFilter {
  public:
    ListFilter() = default;
    virtual ~ListFilter() = default;
    ListFilter(const ListFilter&) = delete;
    ListFilter& operator=(const ListFilter&) = delete;
    ListFilter(ListFilter&&) = delete;
    ListFilter& operator=(ListFilter&&) = delete;

    [[nodiscard]] virtual std::string_view name() const noexcept = 0;
    virtual void on_items(Listing& /*listing*/) {}
    // The result as it will be served (served listings only).
    virtual void on_result(const Listing& /*listing*/, boost::json::object& /*result*/) {}
};

// What the chains see of the session's upstreams.
class Upstreams {
  public:
    Upstreams() = default;
    virtual ~Upstreams() = default;
    Upstreams(const Upstreams&) = delete;
    Upstreams& operator=(const Upstreams&) = delete;
    Upstreams(Upstreams&&) = delete;
    Upstreams& operator=(Upstreams&&) = delete;

    [[nodiscard]] virtual std::size_t count() const = 0;
    [[nodiscard]] virtual const std::string& name(std::size_t link) const = 0;
    // "<name><separator>", or "" without namespacing.
    [[nodiscard]] virtual const std::string& prefix(std::size_t link) const = 0;
    [[nodiscard]] virtual bool usable(std::size_t link) const = 0;
    [[nodiscard]] virtual bool offers(std::size_t link, std::string_view capability) const = 0;
};

// Where a request chain's outcome goes (the session).
class ChainSink {
  public:
    ChainSink() = default;
    virtual ~ChainSink() = default;
    ChainSink(const ChainSink&) = delete;
    ChainSink& operator=(const ChainSink&) = delete;
    ChainSink(ChainSink&&) = delete;
    ChainSink& operator=(ChainSink&&) = delete;

    // The request's trace learns its decision, upstream and target; called
    // when the chain stops (deny, pause) and by the filter that hands the
    // request on (done) before it does.
    virtual void note(const Exchange& x) = 0;
    // Answers the request with the deny step's error.
    virtual void refuse(const Exchange& x, Step step) = 0;
};

class RequestChain final {
  public:
    RequestChain(std::vector<std::unique_ptr<RequestFilter>> filters, ChainSink& sink);
    void start(const std::shared_ptr<Exchange>& x);
    // Goes on after a filter paused, as `step` says (next: with the filter
    // after it).
    void resume(const std::shared_ptr<Exchange>& x, Step step);
    [[nodiscard]] std::vector<std::string_view> names() const;

  private:
    void run(const std::shared_ptr<Exchange>& x);
    void stop(const Exchange& x, Step step);

    std::vector<std::unique_ptr<RequestFilter>> filters_;
    ChainSink& sink_;
};

class ListChain final {
  public:
    explicit ListChain(std::vector<std::unique_ptr<ListFilter>> filters);
    // Runs the filters over `listing`; for a served one, returns the result
    // to serve (empty otherwise).
    boost::json::object run(Listing& listing);
    [[nodiscard]] std::vector<std::string_view> names() const;

  private:
    std::vector<std::unique_ptr<ListFilter>> filters_;
};

}  // namespace pqmcp::gateway
