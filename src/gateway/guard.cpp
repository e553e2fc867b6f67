#include "guard.hpp"

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include "pqmcp/cluster/cluster.hpp"
#include "pqmcp/integrity/jcs.hpp"

namespace pqmcp::gateway {

namespace json = boost::json;
using integrity::PinCheck;

namespace {

constexpr std::size_t k_max_logged = 10'000;
constexpr std::size_t k_max_signed = 256;  // signature blocks kept for lists served again

// The list member that carries each kind in a manifest and a list result.
std::string_view member_of(std::string_view kind) {
    return kind == "tool" ? "tools" : kind == "prompt" ? "prompts" : "resourceTemplates";
}

Result<std::map<std::pair<std::string, std::string>, std::string>> load_manifest(
    const UpstreamConfig& u) {
    const auto bad = [&u](const std::string& why) {
        return fail(Errc::startup_failed,
                    fmt::format("upstream {}: manifest {}: {}", u.name, u.manifest.string(), why));
    };
    std::ifstream in(u.manifest);
    if (!in) {
        return bad("cannot be read");
    }
    std::ostringstream text;
    text << in.rdbuf();
    boost::system::error_code ec;
    json::value doc = json::parse(text.str(), ec);
    if (ec || !doc.is_object()) {
        return bad("not a JSON object");
    }
    auto publisher = identity::PeerId::parse(u.publisher);
    if (!publisher) {
        return bad(publisher.error().message());
    }
    if (auto v =
            integrity::verify_result(doc.as_object(), integrity::k_manifest_method, &*publisher);
        !v) {
        return bad(v.error().message());
    }
    std::map<std::pair<std::string, std::string>, std::string> digests;
    for (const std::string_view kind : {"tool", "prompt", "resourceTemplate"}) {
        const auto* list = doc.as_object().if_contains(member_of(kind));
        if (list == nullptr || !list->is_array()) {
            continue;
        }
        for (const auto& item : list->as_array()) {
            if (!item.is_object()) {
                continue;
            }
            auto digest = integrity::canonical_digest(item);
            if (!digest) {
                return bad(digest.error().message());
            }
            digests[{std::string(kind), item_name(item.as_object())}] = *digest;
        }
    }
    return digests;
}

}  // namespace

std::string item_name(const json::object& item) {
    for (const auto* key : {"name", "uriTemplate"}) {
        if (const auto* v = item.if_contains(key); v != nullptr && v->is_string()) {
            return std::string(v->get_string());
        }
    }
    return {};
}

Guard::Guard(IntegrityConfig config, std::shared_ptr<const integrity::Scanner> scanner,
             integrity::PinStore pins, std::optional<integrity::Signer> signer)
    : config_(std::move(config)),
      threshold_(integrity::parse_severity(config_.threshold).value_or(integrity::Severity::high)),
      scanner_(std::move(scanner)),
      pins_(std::move(pins)),
      signer_(std::move(signer)) {}

Result<std::unique_ptr<Guard>> Guard::create(const GatewayConfig& config,
                                             const identity::Identity& id) {
    const IntegrityConfig& c = config.integrity;
    std::shared_ptr<const integrity::Scanner> scanner;
    if (c.scanner_rules.empty()) {
        scanner = integrity::Scanner::builtin();
    } else {
        auto loaded = integrity::Scanner::load(c.scanner_rules.string());
        if (!loaded) {
            return fail(Errc::startup_failed, loaded.error().message());
        }
        scanner = std::make_shared<const integrity::Scanner>(std::move(*loaded));
    }
    const std::string state = config.state_spec();
    if (!cluster::is_postgres(state)) {
        const std::filesystem::path file(state);
        std::error_code ec;
        if (file.has_parent_path()) {
            std::filesystem::create_directories(file.parent_path(), ec);
        }
    }
    auto pins = cluster::open_pins(state);
    if (!pins) {
        return fail(Errc::startup_failed, pins.error().message());
    }
    std::optional<integrity::Signer> signer;
    if (c.sign_lists) {
        auto s = integrity::make_signer(id);
        if (!s) {
            return fail(Errc::startup_failed, "list signer: " + s.error().message());
        }
        signer = std::move(*s);
    }
    std::unique_ptr<Guard> guard(
        new Guard(c, std::move(scanner), std::move(*pins), std::move(signer)));
    for (const auto& u : config.upstreams) {
        if (u.manifest.empty()) {
            continue;
        }
        auto m = load_manifest(u);
        if (!m) {
            return tl::unexpected(m.error());
        }
        spdlog::info("upstream {}: admitting only the {} definitions of its manifest signed by {}",
                     u.name, m->size(), u.publisher);
        guard->manifests_[u.name] = std::move(*m);
    }
    spdlog::info("tool integrity: pins in {}, {} scanner rules, {} at or above {}, rug pulls: {}{}",
                 guard->pins_.describe() == "sqlite" ? state : guard->pins_.describe(),
                 guard->scanner_->rule_count(), to_string(c.on_finding), c.threshold,
                 to_string(c.on_change), c.sign_lists ? ", lists signed" : "");
    return guard;
}

void Guard::emit(json::object record) const {
    if (on_event) {
        record["kind"] = "integrity";
        on_event(std::move(record));
    }
}

void Guard::log_once(const std::string& key, const std::function<void()>& log) {
    if (logged_.size() >= k_max_logged) {
        logged_.clear();
    }
    if (logged_.insert(key).second) {
        log();
    }
}

std::vector<std::vector<Verdict>> Guard::review(std::string_view kind,
                                                const std::vector<Input>& lists) {
    const std::lock_guard lock(mutex_);
    for (const auto& in : lists) {
        auto& names = known_[*in.upstream][std::string(kind)];
        names.clear();
        for (const auto& item : *in.items) {
            if (item.is_object()) {
                names.insert(item_name(item.as_object()));
            }
        }
    }
    std::vector<std::vector<Verdict>> out;
    out.reserve(lists.size());
    for (const auto& in : lists) {
        integrity::ScanContext context;
        context.upstream = *in.upstream;
        for (const auto& [upstream, kinds] : known_) {
            if (upstream == *in.upstream) {
                continue;
            }
            if (const auto k = kinds.find(std::string(kind)); k != kinds.end()) {
                for (const auto& n : k->second) {
                    context.others.push_back({upstream, n});
                }
            }
        }
        std::vector<Verdict> verdicts;
        verdicts.reserve(in.items->size());
        for (const auto& item : *in.items) {
            verdicts.push_back(item.is_object()
                                   ? review_one(kind, *in.upstream, item.as_object(), context)
                                   : Verdict{});
        }
        out.push_back(std::move(verdicts));
    }
    return out;
}

Verdict Guard::review_instructions(const std::string& upstream, std::string_view text) {
    const std::lock_guard lock(mutex_);
    integrity::ScanContext context;
    context.upstream = upstream;
    for (const auto& [other, kinds] : known_) {
        if (other == upstream) {
            continue;
        }
        if (const auto k = kinds.find("tool"); k != kinds.end()) {
            for (const auto& n : k->second) {
                context.others.push_back({other, n});
            }
        }
    }
    const json::object item{{"name", "instructions"}, {"instructions", text}};
    return review_one("instructions", upstream, item, context);
}

Verdict Guard::review_one(std::string_view kind, const std::string& upstream,
                          const json::object& item, const integrity::ScanContext& context) {
    // A resource is known by its URI (names repeat); instructions are one per upstream.
    std::string name = item_name(item);
    if (kind == "resource") {
        const auto* uri = item.if_contains("uri");
        name = uri != nullptr && uri->is_string() ? std::string(uri->get_string()) : std::string{};
    }
    const std::string label = fmt::format("{} {} of upstream {}", kind, name, upstream);
    Verdict v;
    // 1. The publisher's manifest, when the upstream has one (manifests list
    // tools, prompts and resource templates; resources and instructions are
    // pinned and scanned only).
    if (const auto m = manifests_.find(upstream);
        m != manifests_.end() && kind != "resource" && kind != "instructions") {
        const auto digest = integrity::canonical_digest(item);
        const auto want = m->second.find({std::string(kind), name});
        if (want == m->second.end() || !digest || *digest != want->second) {
            v.action = IntegrityAction::block;
            v.reason = fmt::format("{} {} the publisher's signed manifest", label,
                                   want == m->second.end() ? "is not in" : "differs from");
            v.data = json::object{{"integrity", "manifest"}, {"upstream", upstream}};
            log_once("manifest " + upstream + " " + name + " " + digest.value_or(""), [&] {
                spdlog::warn("integrity: {}; blocked", v.reason);
                emit(json::object{{"event", "signature_failure"},
                                  {"upstream", upstream},
                                  {"item_kind", kind},
                                  {"item", name},
                                  {"severity", "critical"},
                                  {"action", "block"},
                                  {"detail", v.reason}});
            });
            return v;
        }
    }
    // 2. The pin: a definition that changed since it was first seen.
    auto pin = pins_.check({upstream, std::string(kind), name}, item);
    if (!pin) {
        // Without the database the gateway cannot tell: fail closed.
        v.action = IntegrityAction::block;
        v.reason = fmt::format("{} cannot be checked: {}", label, pin.error().message());
        v.data = json::object{{"integrity", "state"}};
        spdlog::error("integrity: {}", v.reason);
        return v;
    }
    if (pin->state == PinCheck::State::pinned_now) {
        spdlog::info("integrity: pinned {} ({})", label, pin->digest.substr(0, 16));
    } else if (pin->state == PinCheck::State::changed) {
        v.action = config_.on_change;
        v.reason = fmt::format(
            "{} changed since it was pinned on {} (a rug pull?); approve it with: pqmcp tools "
            "approve --upstream {} --tool {}",
            label, pin->first_seen, upstream, name);
        v.data = json::object{{"integrity", "rug_pull"},
                              {"upstream", upstream},
                              {"pinned", pin->pinned},
                              {"seen", pin->digest}};
        log_once("pin " + upstream + " " + name + " " + pin->digest, [&] {
            spdlog::warn("integrity: {}; {}. What changed:\n{}", v.reason,
                         v.listed() ? "allowed (on_change: alert)" : "blocked", pin->diff);
            emit(json::object{{"event", "rug_pull"},
                              {"upstream", upstream},
                              {"item_kind", kind},
                              {"item", name},
                              {"severity", "high"},
                              {"action", v.listed() ? "alert" : "block"},
                              {"pinned", pin->pinned},
                              {"seen", pin->digest},
                              {"detail", pin->diff}});
        });
        if (!v.listed()) {
            return v;
        }
    }
    // 3. The poisoning scanner.
    // The scanner reads a resource as it reads a resource template.
    const auto findings = scanner_->scan(
        item, kind == "resource" ? std::string_view("resourceTemplate") : kind, context);
    const integrity::Finding* top = nullptr;
    for (const auto& f : findings) {
        if (top == nullptr || f.severity > top->severity) {
            top = &f;
        }
    }
    if (top == nullptr) {
        return v;
    }
    for (const auto& f : findings) {
        log_once(
            fmt::format("finding {} {} {} {} {}", upstream, name, f.rule, f.pointer, pin->digest),
            [&] {
                spdlog::warn("integrity: {}: {} ({}) at {}: {}", label, f.rule,
                             integrity::to_string(f.severity), f.pointer, f.excerpt);
                const bool acts = f.severity >= threshold_ && v.clean();
                emit(json::object{{"event", "finding"},
                                  {"upstream", upstream},
                                  {"item_kind", kind},
                                  {"item", name},
                                  {"rule", f.rule},
                                  {"severity", integrity::to_string(f.severity)},
                                  {"pointer", f.pointer},
                                  {"action", acts ? to_string(config_.on_finding) : "logged"},
                                  {"detail", f.excerpt}});
            });
    }
    if (top->severity < threshold_ || !v.clean()) {
        return v;  // below the threshold (or already an allowed rug pull): logged only
    }
    v.action = config_.on_finding;
    v.reason = fmt::format("{} was flagged by the tool-poisoning scanner: {} ({}) at {}", label,
                           top->rule, integrity::to_string(top->severity), top->pointer);
    v.data = json::object{{"integrity", "finding"},
                          {"upstream", upstream},
                          {"rule", top->rule},
                          {"severity", integrity::to_string(top->severity)},
                          {"pointer", top->pointer}};
    return v;
}

void Guard::sign(json::object& result, std::string_view method) {
    if (!signer_) {
        return;
    }
    // Clients list the same tools again and again: a list signed before
    // gets the same signature block (its time is when it was first signed).
    auto digest = integrity::canonical_digest(result);
    std::string key = std::string(method) + " " + digest.value_or("");
    if (digest) {
        const std::lock_guard lock(mutex_);
        if (const auto it = signed_.find(key); it != signed_.end()) {
            json::value& meta = result["_meta"];
            if (!meta.is_object()) {
                meta = json::object{};
            }
            meta.as_object()[integrity::k_signature_member] = it->second;
            return;
        }
    }
    if (auto s = integrity::sign_result(result, method, *signer_, integrity::utc_now()); !s) {
        spdlog::error("integrity: signing {}: {}", method, s.error().message());
        return;
    }
    if (digest) {
        const std::lock_guard lock(mutex_);
        if (signed_.size() >= k_max_signed) {
            signed_.clear();
        }
        signed_.emplace(std::move(key),
                        result.at("_meta").at(integrity::k_signature_member).as_object());
    }
}

}  // namespace pqmcp::gateway
