#include "pqmcp/observe/metrics.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace pqmcp::observe {
namespace {

bool valid_name(std::string_view name) {
    if (name.empty()) {
        return false;
    }
    const auto ok = [](char c, bool first) {
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        return alpha || (!first && c >= '0' && c <= '9');
    };
    for (std::size_t i = 0; i < name.size(); ++i) {
        if (!ok(name[i], i == 0)) {
            return false;
        }
    }
    return true;
}

void check_name(std::string_view name) {
    if (!valid_name(name)) {
        throw std::invalid_argument(fmt::format("invalid metric name \"{}\"", name));
    }
}

std::string number(double v) {
    if (std::isinf(v)) {
        return v > 0 ? "+Inf" : "-Inf";
    }
    if (std::isnan(v)) {
        return "NaN";
    }
    if (v == std::floor(v) && std::fabs(v) < 1e15) {
        return fmt::format("{}", static_cast<std::int64_t>(v));
    }
    return fmt::format("{}", v);
}

// `{a="x",b="y"}` (with an extra label appended when `extra` is given), or "".
std::string label_set(const std::vector<std::string>& names, const Labels& values,
                      std::string_view extra_name = {}, std::string_view extra_value = {}) {
    if (names.empty() && extra_name.empty()) {
        return {};
    }
    std::string out = "{";
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (i > 0) {
            out += ',';
        }
        out += fmt::format("{}=\"{}\"", names[i], escape_label(i < values.size() ? values[i] : ""));
    }
    if (!extra_name.empty()) {
        if (!names.empty()) {
            out += ',';
        }
        out += fmt::format("{}=\"{}\"", extra_name, extra_value);
    }
    out += '}';
    return out;
}

void header(std::string& out, std::string_view name, std::string_view help, std::string_view type) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

std::string escape_label(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '"':
                out += "\\\"";
                break;
            case '\n':
                out += "\\n";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::vector<double> latency_buckets() {
    return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
            0.05,    0.1,    0.25,    0.5,    1.0,   2.5,    5.0,   10.0};
}

Counter::Counter(std::string name, std::string help, std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {
    check_name(name_);
}

namespace {

// The series of `values`, made when it is new.
template <typename Map>
typename Map::mapped_type& series_of(Map& series, LabelValues values) {
    auto it = series.find(values);
    if (it == series.end()) {
        it =
            series.emplace(Labels(values.begin(), values.end()), typename Map::mapped_type{}).first;
    }
    return it->second;
}

// Calls `f(values, series)` for each series of each shard, the shard under
// its lock (a scrape adds the threads' shares up this way).
template <typename Shards, typename F>
void for_each_series(const Shards& shards, F&& f) {
    for (const auto& shard : shards) {
        const std::lock_guard lock(shard.mutex);
        for (const auto& [values, series] : shard.series) {
            f(values, series);
        }
    }
}

// The sum over the shards of `part(series)` for the series of `values`.
template <typename Shards, typename Part>
auto sum_of(const Shards& shards, LabelValues values, Part part) {
    decltype(part(shards[0].series.begin()->second)) sum{};
    for (const auto& shard : shards) {
        const std::lock_guard lock(shard.mutex);
        const auto it = shard.series.find(values);
        if (it != shard.series.end()) {
            sum += part(it->second);
        }
    }
    return sum;
}

}  // namespace

void Counter::inc(LabelValues values, double by) {
    auto& shard = shards_[thread_shard()];
    const std::lock_guard lock(shard.mutex);
    series_of(shard.series, values) += by;
}

void Counter::touch(LabelValues values) {
    auto& shard = shards_[thread_shard()];
    const std::lock_guard lock(shard.mutex);
    (void)series_of(shard.series, values);
}

double Counter::value(LabelValues values) const {
    return sum_of(shards_, values, [](double v) { return v; });
}

void Counter::expose(std::string& out) const {
    std::map<Labels, double, LabelsLess> all;
    for_each_series(shards_, [&all](const Labels& values, double v) { all[values] += v; });
    header(out, name_, help_, "counter");
    if (all.empty() && label_names_.empty()) {
        out += fmt::format("{} 0\n", name_);
    }
    for (const auto& [values, v] : all) {
        out += fmt::format("{}{} {}\n", name_, label_set(label_names_, values), number(v));
    }
}

Histogram::Histogram(std::string name, std::string help, std::vector<std::string> label_names,
                     std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      bounds_(std::move(bounds)) {
    check_name(name_);
    if (!std::is_sorted(bounds_.begin(), bounds_.end())) {
        throw std::invalid_argument(fmt::format("histogram {}: bounds must ascend", name_));
    }
}

void Histogram::observe(LabelValues values, double sample) {
    auto& shard = shards_[thread_shard()];
    const std::lock_guard lock(shard.mutex);
    Series& s = series_of(shard.series, values);
    if (s.buckets.empty()) {
        s.buckets.assign(bounds_.size(), 0);
    }
    const auto at = std::lower_bound(bounds_.begin(), bounds_.end(), sample);
    if (at != bounds_.end()) {
        ++s.buckets[static_cast<std::size_t>(at - bounds_.begin())];
    }
    ++s.count;
    s.sum += sample;
}

std::uint64_t Histogram::count(LabelValues values) const {
    return sum_of(shards_, values, [](const Series& s) { return s.count; });
}

void Histogram::expose(std::string& out) const {
    std::map<Labels, Series, LabelsLess> all;
    for_each_series(shards_, [&](const Labels& values, const Series& s) {
        Series& into = all[values];
        if (into.buckets.empty()) {
            into.buckets.assign(bounds_.size(), 0);
        }
        for (std::size_t i = 0; i < s.buckets.size() && i < into.buckets.size(); ++i) {
            into.buckets[i] += s.buckets[i];
        }
        into.count += s.count;
        into.sum += s.sum;
    });
    header(out, name_, help_, "histogram");
    for (const auto& [values, s] : all) {
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < bounds_.size(); ++i) {
            cumulative += s.buckets[i];
            out +=
                fmt::format("{}_bucket{} {}\n", name_,
                            label_set(label_names_, values, "le", number(bounds_[i])), cumulative);
        }
        out += fmt::format("{}_bucket{} {}\n", name_, label_set(label_names_, values, "le", "+Inf"),
                           s.count);
        const std::string labels = label_set(label_names_, values);
        out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name_, labels, number(s.sum), name_,
                           labels, s.count);
    }
}

Gauge::Gauge(std::string name, std::string help, std::function<double()> read,
             std::string_view type)
    : name_(std::move(name)), help_(std::move(help)), read_(std::move(read)), type_(type) {
    check_name(name_);
}

void Gauge::expose(std::string& out) const {
    header(out, name_, help_, type_);
    out += fmt::format("{} {}\n", name_, number(read_ ? read_() : 0.0));
}

Counter& Registry::counter(std::string name, std::string help,
                           std::vector<std::string> label_names) {
    Family f;
    f.counter = std::make_unique<Counter>(std::move(name), std::move(help), std::move(label_names));
    families_.push_back(std::move(f));
    return *families_.back().counter;
}

Histogram& Registry::histogram(std::string name, std::string help,
                               std::vector<std::string> label_names, std::vector<double> bounds) {
    Family f;
    f.histogram = std::make_unique<Histogram>(std::move(name), std::move(help),
                                              std::move(label_names), std::move(bounds));
    families_.push_back(std::move(f));
    return *families_.back().histogram;
}

void Registry::gauge(std::string name, std::string help, std::function<double()> read) {
    Family f;
    f.gauge = std::make_unique<Gauge>(std::move(name), std::move(help), std::move(read));
    families_.push_back(std::move(f));
}

void Registry::counter_fn(std::string name, std::string help, std::function<double()> read) {
    Family f;
    f.gauge = std::make_unique<Gauge>(std::move(name), std::move(help), std::move(read), "counter");
    families_.push_back(std::move(f));
}

std::string Registry::expose() const {
    std::string out;
    out.reserve(4096);
    for (const auto& f : families_) {
        if (f.counter) {
            f.counter->expose(out);
        } else if (f.histogram) {
            f.histogram->expose(out);
        } else if (f.gauge) {
            f.gauge->expose(out);
        }
    }
    return out;
}

}  // namespace pqmcp::observe
