#include "pqmcp/measure/calls.hpp"

#include <algorithm>
#include <utility>

#include <boost/json.hpp>

namespace pqmcp::measure {

namespace json = boost::json;

double CallResults::percentile(double p) const {
    if (latencies_us.empty()) {
        return 0.0;
    }
    const auto index = static_cast<std::size_t>(p * static_cast<double>(latencies_us.size() - 1));
    return latencies_us[index];
}

double CallResults::rate() const {
    return seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
}

CallDriver::CallDriver(CallOptions options, Send send, std::function<void()> finished)
    : options_(std::move(options)), send_(std::move(send)), finished_(std::move(finished)) {
    if (!options_.arguments.empty()) {
        arguments_ = json::parse(options_.arguments).as_object();
    } else if (options_.tool.ends_with("echo")) {
        arguments_["message"] = "post-quantum hello";
    } else if (options_.tool.ends_with("add")) {
        arguments_ = json::object{{"a", 2}, {"b", 3}};
    }
    latencies_.reserve(options_.requests);
}

void CallDriver::start() {
    const std::int64_t id = next_id_++;
    sent_[id] = Clock::now();
    send_(mcp::make_request(id, "initialize",
                            json::object{{"protocolVersion", "2025-11-25"},
                                         {"capabilities", json::object{}},
                                         {"clientInfo", json::object{{"name", options_.client_name},
                                                                     {"version", "1"}}}}));
}

void CallDriver::on_message(const mcp::Message& m) {
    if (!m.is_response() || !m.id.is_int64() || phase_ == Phase::done) {
        return;
    }
    const auto it = sent_.find(m.id.get_int64());
    if (it == sent_.end()) {
        return;
    }
    const auto elapsed = Clock::now() - it->second;
    sent_.erase(it);
    const bool failed = m.kind == mcp::Kind::error ||
                        (m.body.contains("result") && m.body.at("result").is_object() &&
                         m.body.at("result").as_object().contains("isError"));
    if (failed && errors_++ == 0) {
        first_error_ = mcp::serialize(m.body);
    }
    if (phase_ == Phase::init) {
        phase_ = options_.warmup > 0 ? Phase::warmup : Phase::measure;
        errors_ = 0;
        start_ = Clock::now();
        send_(mcp::make_notification("notifications/initialized", {}));
        if (failed) {
            phase_ = Phase::done;
            end_ = Clock::now();
            finished_();
            return;
        }
        fill();
        return;
    }
    ++done_;
    if (phase_ == Phase::measure) {
        latencies_.push_back(std::chrono::duration<double, std::micro>(elapsed).count());
    }
    if (phase_ == Phase::warmup && done_ >= options_.warmup) {
        phase_ = Phase::measure;
        done_ = 0;
        issued_ = 0;
        errors_ = 0;
        first_error_.clear();
        start_ = Clock::now();
    }
    if (phase_ == Phase::measure && done_ >= options_.requests) {
        phase_ = Phase::done;
        end_ = Clock::now();
        finished_();
        return;
    }
    fill();
}

bool CallDriver::finished() const noexcept {
    return phase_ == Phase::done && done_ >= options_.requests;
}

CallResults CallDriver::results() const {
    CallResults r;
    r.latencies_us = latencies_;
    std::sort(r.latencies_us.begin(), r.latencies_us.end());
    r.seconds = phase_ == Phase::done ? std::chrono::duration<double>(end_ - start_).count() : 0;
    r.done = done_;
    r.errors = errors_;
    r.first_error = first_error_;
    return r;
}

void CallDriver::fill() {
    const std::size_t target = phase_ == Phase::warmup ? options_.warmup : options_.requests;
    while (sent_.size() < options_.concurrency && issued_ < target) {
        ++issued_;
        const std::int64_t id = next_id_++;
        sent_[id] = Clock::now();
        send_(mcp::make_request(id, "tools/call",
                                json::object{{"name", options_.tool}, {"arguments", arguments_}}));
    }
}

}  // namespace pqmcp::measure
