// Internal: tool integrity in the gateway. Every tools/list, prompts/list and
// resources/templates/list an upstream serves passes through the guard before
// a client sees it: each definition is compared with its pin (rug pulls),
// with the upstream publisher's signed manifest when there is one, and run
// through the poisoning scanner with the other upstreams' names beside it
// (shadowing, imitation). What the gateway serves is then signed with its
// identity.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "pqmcp/gateway/config.hpp"
#include "pqmcp/identity/identity.hpp"
#include "pqmcp/integrity/pins.hpp"
#include "pqmcp/integrity/scanner.hpp"
#include "pqmcp/integrity/signing.hpp"

namespace pqmcp::gateway {

struct Verdict {
    IntegrityAction action = IntegrityAction::alert;  // alert with an empty reason: clean
    std::string reason;                               // one line for the client's error and the log
    boost::json::object data;  // the error's data: {"integrity": ..., "rule", ...}

    [[nodiscard]] bool clean() const noexcept { return reason.empty(); }
    [[nodiscard]] bool listed() const noexcept { return action == IntegrityAction::alert; }
};

class Guard final {
  public:
    // Opens the state database, loads the rule file and verifies the
    // upstreams' manifests. Errors: startup_failed naming what failed.
    [[nodiscard]] static Result<std::unique_ptr<Guard>> create(const GatewayConfig& config,
                                                               const identity::Identity& id);

    // One list of one kind ("tool", "prompt", "resourceTemplate") from each
    // upstream: a verdict per item, in the same order.
    struct Input {
        const std::string* upstream;
        const boost::json::array* items;
    };
    [[nodiscard]] std::vector<std::vector<Verdict>> review(std::string_view kind,
                                                           const std::vector<Input>& lists);

    // An upstream's `instructions` (its initialize result), pinned as the item
    // "instructions" of kind "instructions" and scanned like a definition.
    [[nodiscard]] Verdict review_instructions(const std::string& upstream, std::string_view text);

    // Adds the gateway's signature to a list result it serves (when enabled).
    void sign(boost::json::object& result, std::string_view method);

    [[nodiscard]] const IntegrityConfig& config() const noexcept { return config_; }

    // Called once for each new integrity event (a rug pull, a finding, a
    // definition outside its publisher's manifest) with its audit record.
    std::function<void(boost::json::object)> on_event;

  private:
    Guard(IntegrityConfig config, std::shared_ptr<const integrity::Scanner> scanner,
          integrity::PinStore pins, std::optional<integrity::Signer> signer);

    [[nodiscard]] Verdict review_one(std::string_view kind, const std::string& upstream,
                                     const boost::json::object& item,
                                     const integrity::ScanContext& context);
    // Logs what is new only once (every tools/list would repeat it).
    void log_once(const std::string& key, const std::function<void()>& log);
    void emit(boost::json::object record) const;

    IntegrityConfig config_;
    integrity::Severity threshold_ = integrity::Severity::high;
    std::shared_ptr<const integrity::Scanner> scanner_;
    integrity::PinStore pins_;
    std::optional<integrity::Signer> signer_;
    // Upstream -> name -> digest from its publisher's verified manifest (by kind).
    std::map<std::string, std::map<std::pair<std::string, std::string>, std::string>> manifests_;
    // Upstream -> kind -> the upstream's own names, as last listed.
    std::map<std::string, std::map<std::string, std::set<std::string>>> known_;
    std::set<std::string> logged_;
    // "<method> <digest of the unsigned result>" -> its signature block.
    std::map<std::string, boost::json::object> signed_;
    // Sessions on every thread review and sign: one review at a time (the
    // pins and names above); signing itself runs outside it.
    std::mutex mutex_;
};

// The name a pin and a finding use for an item: "name", or a template's uriTemplate.
[[nodiscard]] std::string item_name(const boost::json::object& item);

}  // namespace pqmcp::gateway
