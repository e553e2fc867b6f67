#include "pqmcp/policy/behaviour.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include <boost/json/serialize.hpp>

#include "seeded_hash.hpp"

namespace pqmcp::policy {
namespace json = boost::json;

namespace {

constexpr std::size_t k_max_recent = 4'096;
constexpr std::size_t k_max_fields = 64;  // per tool, for id runs
constexpr double k_burst_score = 0.6;
constexpr double k_first_use_score = 0.3;
constexpr double k_large_score = 0.4;
constexpr double k_enumeration_score = 0.7;
// Numbers a double holds exactly (a shared store's scripts count in doubles).
constexpr std::int64_t k_max_exact = std::int64_t{1} << 53;

// "P0042" -> ("P", 42); 42 -> ("", 42); nothing for anything else.
std::optional<std::pair<std::string, std::int64_t>> numbered(const json::value& v) {
    if (v.is_int64()) {
        return std::pair{std::string{}, v.get_int64()};
    }
    if (!v.is_string()) {
        return std::nullopt;
    }
    const std::string_view s = v.get_string();
    std::size_t digits = 0;
    while (digits < s.size() && digits < 15 &&
           std::isdigit(static_cast<unsigned char>(s[s.size() - 1 - digits])) != 0) {
        ++digits;
    }
    if (digits == 0) {
        return std::nullopt;
    }
    std::int64_t n = 0;
    const char* begin = s.data() + s.size() - digits;
    (void)std::from_chars(begin, s.data() + s.size(), n);
    return std::pair{std::string(s.substr(0, s.size() - digits)), n};
}

std::string format_rate(double per_minute) {
    return std::to_string(static_cast<long long>(std::lround(per_minute))) + "/min";
}

double tau_of(const BehaviourSettings& s) {
    return std::max(s.half_life_seconds, 1.0) / std::log(2.0);
}

}  // namespace

std::chrono::seconds baseline_lifetime(const BehaviourSettings& settings) {
    // Twenty half-lives leave a millionth of the rate; the tools a caller
    // used are remembered at least a day.
    const auto half_lives = static_cast<std::int64_t>(std::ceil(settings.half_life_seconds * 20));
    return std::chrono::seconds{std::max<std::int64_t>(half_lives, 86'400)};
}

CallFacts Behaviour::facts(const std::string& tool, const json::value* arguments) {
    CallFacts f;
    f.tool = tool;
    f.size = arguments != nullptr ? static_cast<double>(json::serialize(*arguments).size()) : 0.0;
    if (arguments == nullptr || !arguments->is_object()) {
        return f;
    }
    for (const auto& [key, value] : arguments->get_object()) {
        if (f.numbered.size() >= k_max_numbered) {
            break;
        }
        const auto n = numbered(value);
        if (!n || n->second >= k_max_exact || n->second <= -k_max_exact) {
            continue;
        }
        f.numbered.push_back({std::string(key), std::string(key) + "|" + n->first, n->second});
    }
    return f;
}

Behaviour::Assessment Behaviour::score(const BehaviourSettings& settings, const CallFacts& facts,
                                       const Snapshot& before) {
    Assessment out;
    const bool warm = before.calls >= settings.warmup_calls;

    // Rate: the calls of the last ten seconds (this one included) against
    // the time-decayed baseline.
    const double recent_per_minute = static_cast<double>(before.recent + 1) * 60.0 /
                                     std::chrono::duration<double>(k_burst_window).count();
    if (recent_per_minute >= settings.burst_min_per_minute &&
        recent_per_minute > settings.burst_factor * before.baseline_per_minute) {
        out.findings.push_back({"burst", k_burst_score,
                                format_rate(recent_per_minute) +
                                    " in the last 10 s against a baseline of " +
                                    format_rate(before.baseline_per_minute)});
    }

    // First use of a tool, once the identity has a history.
    if (warm && !before.tool_known) {
        out.findings.push_back({"first_use", k_first_use_score, "first call of " + facts.tool});
    }

    // Argument size against its moving mean and deviation.
    if (warm && facts.size >= static_cast<double>(settings.size_min_bytes) &&
        facts.size > before.size_mean + settings.size_sigmas * std::sqrt(before.size_var)) {
        out.findings.push_back({"large_argument", k_large_score,
                                std::to_string(static_cast<long long>(facts.size)) +
                                    " bytes of arguments against a mean of " +
                                    std::to_string(static_cast<long long>(before.size_mean))});
    }

    // Enumeration: a top-level argument whose number goes up by one, call after call.
    for (std::size_t i = 0; i < facts.numbered.size() && i < before.runs.size(); ++i) {
        if (before.runs[i] >= settings.enumeration_run) {
            // The detail goes to the log: the field's name, never its values.
            out.findings.push_back({"enumeration", k_enumeration_score,
                                    std::to_string(before.runs[i]) + " calls of " + facts.tool +
                                        " with " + facts.numbered[i].field + " one apart"});
            break;
        }
    }

    for (const auto& f : out.findings) {
        out.score += f.score;
    }
    out.score = std::min(out.score, 1.0);
    return out;
}

Behaviour::Shard& Behaviour::shard_of(const std::string& identity) const {
    // Seeded per process: which identities share a shard (and its LRU of
    // k_max_identities / k_shards) cannot be worked out in advance, so a
    // caller cannot make up identities that land next to another caller's
    // to push that caller's baseline out.
    return shards_.at(detail::seeded_hash(identity) % k_shards);
}

Snapshot Behaviour::learn(Shard& sh, const std::string& identity, const CallFacts& facts,
                          Clock::time_point now) {
    auto [found, new_identity] = sh.baselines.try_emplace(identity);
    Baseline& b = found->second;
    if (new_identity) {
        sh.recency.push_front(identity);
        b.recency = sh.recency.begin();
        if (sh.baselines.size() > k_max_identities / k_shards) {
            sh.baselines.erase(sh.recency.back());
            sh.recency.pop_back();
        }
    } else {
        sh.recency.splice(sh.recency.begin(), sh.recency, b.recency);
    }
    const double tau = tau_of(sh.settings);

    Snapshot s;
    s.calls = b.calls;
    if (b.calls > 0) {
        const double dt = std::max(std::chrono::duration<double>(now - b.last).count(), 0.0);
        b.rate *= std::exp(-dt / tau);
    }
    s.baseline_per_minute = b.rate / tau * 60.0;
    while (!b.recent.empty() && now - b.recent.front() >= k_burst_window) {
        b.recent.pop_front();
    }
    s.recent = b.recent.size();
    s.tool_known = b.tools.contains(facts.tool);
    s.size_mean = b.size_mean;
    s.size_var = b.size_var;

    // Id runs: every numbered field's, this call included.
    if (!facts.numbered.empty()) {
        if (!b.ids.contains(facts.tool) && b.ids.size() >= k_max_id_tools) {
            b.ids.erase(b.ids.begin());
        }
        auto& fields = b.ids[facts.tool];
        for (const auto& f : facts.numbered) {
            auto [it, fresh] = fields.try_emplace(f.slot, std::pair{f.n, std::size_t{1}});
            if (!fresh) {
                it->second.second = f.n == it->second.first + 1 ? it->second.second + 1 : 1;
                it->second.first = f.n;
            }
            s.runs.push_back(it->second.second);
        }
        // Bounded: an identity that sends ever new fields keeps the last ones only.
        while (fields.size() > k_max_fields) {
            fields.erase(fields.begin());
        }
    }

    // Learn from the call.
    if (b.calls == 0) {
        b.first = now;
    }
    ++b.calls;
    b.last = now;
    b.rate += 1.0;
    b.recent.push_back(now);
    while (b.recent.size() > k_max_recent) {
        b.recent.pop_front();
    }
    if (!s.tool_known && b.tools.size() >= k_max_tools) {
        // The least used tool goes (a first use of it later is a first use again).
        const auto least =
            std::min_element(b.tools.begin(), b.tools.end(),
                             [](const auto& x, const auto& y) { return x.second < y.second; });
        b.tools.erase(least);
    }
    ++b.tools[facts.tool];
    const double alpha = 1.0 / static_cast<double>(std::min<std::uint64_t>(b.calls, 50));
    const double delta = facts.size - b.size_mean;
    b.size_mean += alpha * delta;
    b.size_var = (1.0 - alpha) * (b.size_var + alpha * delta * delta);
    return s;
}

Behaviour::Assessment Behaviour::observe(const std::string& identity, const std::string& tool,
                                         const json::value* arguments, Clock::time_point now) {
    const CallFacts f = facts(tool, arguments);
    Shard& sh = shard_of(identity);
    const std::lock_guard lock(sh.mutex);
    if (!sh.settings.enabled) {
        return {};
    }
    return score(sh.settings, f, learn(sh, identity, f, now));
}

Behaviour::Assessment Behaviour::observe(const std::string& identity, const CallFacts& f,
                                         Clock::time_point now,
                                         const std::optional<Snapshot>& shared) {
    Shard& sh = shard_of(identity);
    const std::lock_guard lock(sh.mutex);
    if (!sh.settings.enabled) {
        return {};
    }
    const Snapshot here = learn(sh, identity, f, now);
    if (!shared) {
        ++sh.fallbacks;
    }
    return score(sh.settings, f, shared ? *shared : here);
}

std::size_t Behaviour::tools_of(const std::string& identity) const {
    const Shard& sh = shard_of(identity);
    const std::lock_guard lock(sh.mutex);
    const auto it = sh.baselines.find(identity);
    return it == sh.baselines.end() ? 0 : it->second.tools.size();
}

}  // namespace pqmcp::policy
