#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "pqmcp/measure/measure.hpp"

namespace pqmcp::measure {
namespace {

using Clock = std::chrono::steady_clock;

class MeasureCategory final : public std::error_category {
  public:
    [[nodiscard]] const char* name() const noexcept override { return "measure"; }
    [[nodiscard]] std::string message(int code) const override {
        switch (static_cast<Errc>(code)) {
            case Errc::operation_failed:
                return "the measured operation failed";
            case Errc::setup_failed:
                return "measurement set-up failed";
            case Errc::gateway_failed:
                return "gateway measurement failed";
            case Errc::timeout:
                return "measurement timed out";
        }
        return "unknown measure error";
    }
};

// Runs `op` `count` times; the seconds it took, or nothing if it failed.
std::optional<double> batch(const std::function<bool()>& op, std::uint64_t count) {
    const auto start = Clock::now();
    for (std::uint64_t i = 0; i < count; ++i) {
        if (!op()) {
            return std::nullopt;
        }
    }
    return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

const std::error_category& measure_category() noexcept {
    static const MeasureCategory category;
    return category;
}

Budget quick_budget() noexcept {
    return Budget{std::chrono::milliseconds{40}, 3};
}

Result<Timing> time_operation(const std::function<bool()>& op, const Budget& budget) {
    const double target = std::chrono::duration<double>(budget.batch).count();
    // Calibration: double the count until a batch takes a tenth of the target.
    std::uint64_t count = 1;
    double seconds = 0;
    for (;;) {
        const auto took = batch(op, count);
        if (!took) {
            return fail(Errc::operation_failed, "failed during calibration");
        }
        seconds = *took;
        if (seconds >= target / 10 || count >= (std::uint64_t{1} << 30)) {
            break;
        }
        count *= 2;
    }
    const double per_op = seconds / static_cast<double>(count);
    const auto per_batch =
        std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::llround(target / per_op)));
    std::vector<double> rounds;
    Timing timing;
    for (int r = 0; r < std::max(budget.rounds, 1); ++r) {
        const auto took = batch(op, per_batch);
        if (!took) {
            return fail(Errc::operation_failed, "failed while measured");
        }
        rounds.push_back(*took * 1e6 / static_cast<double>(per_batch));
        timing.operations += per_batch;
    }
    std::sort(rounds.begin(), rounds.end());
    const std::size_t n = rounds.size();
    timing.us = n % 2 == 1 ? rounds[n / 2] : (rounds[n / 2 - 1] + rounds[n / 2]) / 2;
    timing.min_us = rounds.front();
    timing.max_us = rounds.back();
    return timing;
}

}  // namespace pqmcp::measure
