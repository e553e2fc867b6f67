#include "pqmcp/transport/sse.hpp"

#include <charconv>

namespace pqmcp::transport {

Status SseParser::feed(std::string_view bytes, std::vector<SseEvent>& out) {
    for (const char c : bytes) {
        // "Lines must be separated by either a U+000D CARRIAGE RETURN U+000A LINE
        // FEED (CRLF) character pair, a single U+000A LINE FEED (LF) character,
        // or a single U+000D CARRIAGE RETURN (CR) character."
        if (c == '\n' && after_cr_) {
            after_cr_ = false;
            continue;
        }
        after_cr_ = c == '\r';
        if (c == '\r' || c == '\n') {
            process_line(line_, out);
            line_.clear();
            continue;
        }
        line_.push_back(c);
        if (++event_bytes_ > max_event_) {
            return fail(Errc::too_large,
                        "an SSE event longer than " + std::to_string(max_event_) + " bytes");
        }
    }
    return {};
}

void SseParser::process_line(std::string_view line, std::vector<SseEvent>& out) {
    if (line.empty()) {
        // Dispatch. "If the data buffer is an empty string, set the data buffer
        // and the event type buffer to the empty string and return."
        if (id_) {
            last_id_ = *id_;
        }
        if (!data_.empty()) {
            data_.pop_back();  // the trailing LF
            SseEvent event;
            event.type = type_.empty() ? "message" : type_;
            event.data = std::move(data_);
            event.id = id_;
            event.retry = retry_;
            out.push_back(std::move(event));
        } else if (retry_ || id_) {
            // A priming event (id, empty data) or a bare retry: nothing to
            // deliver, but the caller wants the cursor and the retry time.
            SseEvent event;
            event.type = "";
            event.id = id_;
            event.retry = retry_;
            out.push_back(std::move(event));
        }
        data_.clear();
        type_.clear();
        id_.reset();
        retry_.reset();
        event_bytes_ = 0;
        return;
    }
    if (line.front() == ':') {
        return;  // comment
    }
    std::string_view field = line;
    std::string_view value;
    if (const auto colon = line.find(':'); colon != std::string_view::npos) {
        field = line.substr(0, colon);
        value = line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') {
            value.remove_prefix(1);
        }
    }
    if (field == "data") {
        data_.append(value);
        data_.push_back('\n');
    } else if (field == "event") {
        type_ = std::string(value);
    } else if (field == "id") {
        // "If the field value does not contain U+0000 NULL, then set the last
        // event ID buffer to the field value. Otherwise, ignore the field."
        if (value.find('\0') == std::string_view::npos) {
            id_ = std::string(value);
        }
    } else if (field == "retry") {
        std::uint64_t ms = 0;
        const auto* end = value.data() + value.size();
        if (!value.empty() && std::from_chars(value.data(), end, ms).ptr == end) {
            retry_ = ms;
        }
    }
}

std::string format_sse_event(std::string_view id, std::string_view data, std::uint64_t retry_ms) {
    std::string out;
    out.reserve(data.size() + id.size() + 24);
    if (!id.empty()) {
        out.append("id: ").append(id).push_back('\n');
    }
    if (retry_ms > 0) {
        out.append("retry: ").append(std::to_string(retry_ms)).push_back('\n');
    }
    std::string_view rest = data;
    do {
        const auto nl = rest.find('\n');
        out.append("data: ").append(rest.substr(0, nl)).push_back('\n');
        rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    } while (!rest.empty());
    out.push_back('\n');
    return out;
}

std::string format_sse_comment(std::string_view text) {
    std::string out = ": ";
    out.append(text);
    out.append("\n\n");
    return out;
}

}  // namespace pqmcp::transport
