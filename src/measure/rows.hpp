// Internal to measure: a row's timing built from its timed parts.
#pragma once

#include <functional>
#include <string>

#include "pqmcp/measure/measure.hpp"

namespace pqmcp::measure {

// Times each named operation in turn; the row's time is `weights` times each
// part's median, added up (an exchange that generates two key pairs counts
// keygen twice).
class RowBuilder {
  public:
    RowBuilder(const Budget& budget, const Progress& progress, Row& row)
        : budget_(budget), progress_(progress), row_(row) {}

    Status part(const std::string& operation, double weight, const std::function<bool()>& op) {
        if (progress_) {
            progress_(row_.name + " " + operation);
        }
        auto timing = time_operation(op, budget_);
        if (!timing) {
            return fail(Errc::operation_failed,
                        row_.name + " " + operation + ": " + timing.error().detail);
        }
        row_.timing.us += weight * timing->us;
        row_.timing.min_us += weight * timing->min_us;
        row_.timing.max_us += weight * timing->max_us;
        row_.timing.operations += timing->operations;
        row_.parts.push_back(Part{operation, *timing});
        return {};
    }

  private:
    const Budget& budget_;
    const Progress& progress_;
    Row& row_;
};

}  // namespace pqmcp::measure
