// Server-Sent Events (WHATWG HTML, "Server-sent events", event stream
// interpretation): an incremental, bounded parser and the event writer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pqmcp/core/error.hpp"
#include "pqmcp/transport/errors.hpp"

namespace pqmcp::transport {

struct SseEvent {
    std::string type;                    // "message" when the stream named none
    std::string data;                    // lines joined with '\n'
    std::optional<std::string> id;       // set when the event carried an id field
    std::optional<std::uint64_t> retry;  // reconnection time in ms, when given
};

class SseParser final {
  public:
    // `max_event`: bytes of one event's data plus field names; beyond it the
    // stream fails with too_large.
    explicit SseParser(std::size_t max_event) : max_event_(max_event) {}

    // Parses bytes; dispatched events are appended to `out`. A comment line
    // (":" ...) dispatches nothing. Errors: too_large.
    [[nodiscard]] Status feed(std::string_view bytes, std::vector<SseEvent>& out);

    // The last event id seen (the stream's cursor for Last-Event-ID).
    [[nodiscard]] const std::string& last_event_id() const noexcept { return last_id_; }

  private:
    void process_line(std::string_view line, std::vector<SseEvent>& out);

    std::size_t max_event_;
    std::string line_;
    bool after_cr_ = false;
    std::string data_;
    std::string type_;
    std::optional<std::string> id_;
    std::optional<std::uint64_t> retry_;
    std::size_t event_bytes_ = 0;
    std::string last_id_;
};

// One event as written on the wire: "id: ..\ndata: ..\n\n" (each line of `data`
// on its own data field); `retry_ms` > 0 adds a retry field.
[[nodiscard]] std::string format_sse_event(std::string_view id, std::string_view data,
                                           std::uint64_t retry_ms = 0);
// A comment line, ignored by clients; keeps idle connections alive.
[[nodiscard]] std::string format_sse_comment(std::string_view text);

}  // namespace pqmcp::transport
