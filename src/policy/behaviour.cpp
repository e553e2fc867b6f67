#include "pqmcp/policy/behaviour.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include <boost/json/serialize.hpp>

namespace pqmcp::policy {
namespace json = boost::json;

namespace {

constexpr auto k_burst_window = std::chrono::seconds{10};
constexpr std::size_t k_max_recent = 4'096;
constexpr double k_burst_score = 0.6;
constexpr double k_first_use_score = 0.3;
constexpr double k_large_score = 0.4;
constexpr double k_enumeration_score = 0.7;

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
    while (digits < s.size() && digits < 18 &&
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

}  // namespace

Behaviour::Assessment Behaviour::observe(const std::string& identity, const std::string& tool,
                                         const json::value* arguments, Clock::time_point now) {
    const std::lock_guard lock(mutex_);
    Assessment out;
    if (!settings_.enabled) {
        return out;
    }
    auto [found, new_identity] = baselines_.try_emplace(identity);
    Baseline& b = found->second;
    if (new_identity) {
        recency_.push_front(identity);
        b.recency = recency_.begin();
        if (baselines_.size() > k_max_identities) {
            baselines_.erase(recency_.back());
            recency_.pop_back();
        }
    } else {
        recency_.splice(recency_.begin(), recency_, b.recency);
    }
    const double tau = std::max(settings_.half_life_seconds, 1.0) / std::log(2.0);
    const bool warm = b.calls >= settings_.warmup_calls;

    // Rate: a time-decayed count of calls (its steady value is rate x tau)
    // against the calls of the last ten seconds.
    if (b.calls > 0) {
        const double dt = std::max(std::chrono::duration<double>(now - b.last).count(), 0.0);
        b.rate *= std::exp(-dt / tau);
    }
    while (!b.recent.empty() && now - b.recent.front() >= k_burst_window) {
        b.recent.pop_front();
    }
    const double recent_per_minute = static_cast<double>(b.recent.size() + 1) * 60.0 /
                                     std::chrono::duration<double>(k_burst_window).count();
    const double baseline_per_minute = b.rate / tau * 60.0;
    if (recent_per_minute >= settings_.burst_min_per_minute &&
        recent_per_minute > settings_.burst_factor * baseline_per_minute) {
        out.findings.push_back({"burst", k_burst_score,
                                format_rate(recent_per_minute) +
                                    " in the last 10 s against a baseline of " +
                                    format_rate(baseline_per_minute)});
    }

    // First use of a tool, once the identity has a history.
    if (warm && !b.tools.contains(tool)) {
        out.findings.push_back({"first_use", k_first_use_score, "first call of " + tool});
    }

    // Argument size against its moving mean and deviation.
    const double size =
        arguments != nullptr ? static_cast<double>(json::serialize(*arguments).size()) : 0.0;
    if (warm && size >= static_cast<double>(settings_.size_min_bytes) &&
        size > b.size_mean + settings_.size_sigmas * std::sqrt(b.size_var)) {
        out.findings.push_back({"large_argument", k_large_score,
                                std::to_string(static_cast<long long>(size)) +
                                    " bytes of arguments against a mean of " +
                                    std::to_string(static_cast<long long>(b.size_mean))});
    }

    // Enumeration: a top-level argument whose number goes up by one, call after call.
    if (arguments != nullptr && arguments->is_object()) {
        if (!b.ids.contains(tool) && b.ids.size() >= k_max_id_tools) {
            b.ids.erase(b.ids.begin());
        }
        auto& fields = b.ids[tool];
        for (const auto& [key, value] : arguments->get_object()) {
            const auto n = numbered(value);
            if (!n) {
                continue;
            }
            const std::string slot = std::string(key) + "|" + n->first;
            auto [it, fresh] = fields.try_emplace(slot, std::pair{n->second, std::size_t{1}});
            if (!fresh) {
                it->second.second = n->second == it->second.first + 1 ? it->second.second + 1 : 1;
                it->second.first = n->second;
            }
            if (it->second.second >= settings_.enumeration_run) {
                // The detail goes to the log: the field's name, never its values.
                out.findings.push_back({"enumeration", k_enumeration_score,
                                        std::to_string(it->second.second) + " calls of " + tool +
                                            " with " + std::string(key) + " one apart"});
                break;
            }
        }
        // Bounded: an identity that sends ever new fields keeps the last ones only.
        while (fields.size() > 64) {
            fields.erase(fields.begin());
        }
    }

    for (const auto& f : out.findings) {
        out.score += f.score;
    }
    out.score = std::min(out.score, 1.0);

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
    if (!b.tools.contains(tool) && b.tools.size() >= k_max_tools) {
        // The least used tool goes (a first use of it later is a first use again).
        const auto least =
            std::min_element(b.tools.begin(), b.tools.end(),
                             [](const auto& x, const auto& y) { return x.second < y.second; });
        b.tools.erase(least);
    }
    ++b.tools[tool];
    const double alpha = 1.0 / static_cast<double>(std::min<std::uint64_t>(b.calls, 50));
    const double delta = size - b.size_mean;
    b.size_mean += alpha * delta;
    b.size_var = (1.0 - alpha) * (b.size_var + alpha * delta * delta);
    return out;
}

std::size_t Behaviour::tools_of(const std::string& identity) const {
    const std::lock_guard lock(mutex_);
    const auto it = baselines_.find(identity);
    return it == baselines_.end() ? 0 : it->second.tools.size();
}

}  // namespace pqmcp::policy
