#include "pqmcp/mcp/jsonrpc.hpp"
#include "pqmcp/mcp/protocol.hpp"

#include <boost/json/error.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace pqmcp::mcp {
namespace json = boost::json;

namespace {

class McpCategory final : public std::error_category {
  public:
    [[nodiscard]] const char* name() const noexcept override { return "mcp"; }
    [[nodiscard]] std::string message(int value) const override {
        switch (static_cast<Errc>(value)) {
            case Errc::parse_error:
                return "parse error";
            case Errc::invalid_request:
                return "invalid request";
            case Errc::too_large:
                return "message too large";
            case Errc::too_deep:
                return "message nested too deeply";
            case Errc::batch_too_long:
                return "batch too long";
            case Errc::batch_not_allowed:
                return "batches are not supported in this protocol version";
        }
        return "unknown mcp error";
    }
};

bool valid_id(const json::value& id) noexcept {
    // MCP, Requests: "Requests MUST include a string or integer ID" and "Unlike
    // base JSON-RPC, the ID MUST NOT be null."
    return id.is_string() || id.is_int64() || id.is_uint64();
}

std::string string_member(const json::object* object, std::string_view key) {
    if (object == nullptr) {
        return {};
    }
    const auto* v = object->if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string{};
}

}  // namespace

const std::error_category& mcp_category() noexcept {
    static const McpCategory category;
    return category;
}

int jsonrpc_code(const Error& error) noexcept {
    if (error.code == Errc::parse_error || error.code == Errc::too_deep) {
        return code::parse_error;
    }
    return code::invalid_request;
}

const json::object* Message::params() const noexcept {
    const auto* p = body.if_contains("params");
    return p != nullptr ? p->if_object() : nullptr;
}

json::object* Message::params() noexcept {
    auto* p = body.if_contains("params");
    return p != nullptr ? p->if_object() : nullptr;
}

const json::object* Message::meta() const noexcept {
    const json::object* p = params();
    const auto* m = p != nullptr ? p->if_contains("_meta") : nullptr;
    return m != nullptr ? m->if_object() : nullptr;
}

json::object* Message::meta() noexcept {
    json::object* p = params();
    auto* m = p != nullptr ? p->if_contains("_meta") : nullptr;
    return m != nullptr ? m->if_object() : nullptr;
}

const json::value* Message::progress_token() const noexcept {
    const json::object* m = meta();
    return m != nullptr ? m->if_contains("progressToken") : nullptr;
}

Item classify(json::value&& value) {
    json::object* object = value.if_object();
    if (object == nullptr) {
        return tl::unexpected(Invalid{nullptr, "a JSON-RPC message must be an object"});
    }
    json::value id = nullptr;
    const json::value* raw_id = object->if_contains("id");
    if (raw_id != nullptr && valid_id(*raw_id)) {
        id = *raw_id;
    }
    const auto invalid = [&id](std::string reason) {
        return tl::unexpected(Invalid{id, std::move(reason)});
    };
    const json::value* version = object->if_contains("jsonrpc");
    if (version == nullptr || !version->is_string() || version->get_string() != "2.0") {
        return invalid("\"jsonrpc\" must be \"2.0\"");
    }

    Message m;
    const json::value* method = object->if_contains("method");
    if (method != nullptr) {
        if (!method->is_string() || method->get_string().empty()) {
            return invalid("\"method\" must be a non-empty string");
        }
        if (const json::value* params = object->if_contains("params");
            params != nullptr && !params->is_object() && !params->is_array()) {
            return invalid("\"params\" must be an object or an array");
        }
        if (raw_id != nullptr) {
            if (!valid_id(*raw_id)) {
                return invalid("a request id must be a string or an integer");
            }
            m.kind = Kind::request;
        } else {
            m.kind = Kind::notification;
        }
        m.method = std::string(method->get_string());
    } else {
        const bool has_result = object->contains("result");
        const json::value* error = object->if_contains("error");
        if (has_result == (error != nullptr)) {
            return invalid("a response must have exactly one of \"result\" and \"error\"");
        }
        if (raw_id == nullptr) {
            return invalid("a response must have an id");
        }
        if (has_result) {
            if (!valid_id(*raw_id)) {
                return invalid("a response id must be a string or an integer");
            }
            m.kind = Kind::response;
        } else {
            // JSON-RPC 2.0 section 5: the id of an error is null when the request's
            // id could not be determined.
            if (!raw_id->is_null() && !valid_id(*raw_id)) {
                return invalid("an error response id must be a string, an integer or null");
            }
            const json::object* e = error->if_object();
            if (e == nullptr || !e->contains("code") || !e->at("code").is_number() ||
                !e->contains("message") || !e->at("message").is_string()) {
                return invalid("\"error\" must be an object with a numeric code and a message");
            }
            m.kind = Kind::error;
        }
    }
    m.id = std::move(id);
    m.body = std::move(*object);
    if (m.kind == Kind::request || m.kind == Kind::notification) {
        const json::object* p = m.params();
        m.name = string_member(p, "name");
        m.uri = string_member(p, "uri");
    }
    return m;
}

Result<Parsed> parse(std::string_view text, const Limits& limits) {
    if (text.size() > limits.max_message_bytes) {
        return fail(Errc::too_large, std::to_string(text.size()) + " bytes, the limit is " +
                                         std::to_string(limits.max_message_bytes));
    }
    json::parse_options options;
    options.max_depth = limits.max_depth;
    boost::system::error_code ec;
    json::value root = json::parse(text, ec, {}, options);
    if (ec) {
        if (ec == json::error::too_deep) {
            return fail(Errc::too_deep, "more than " + std::to_string(limits.max_depth) +
                                            " levels of arrays and objects");
        }
        return fail(Errc::parse_error, ec.message());
    }
    Parsed parsed;
    if (json::array* batch = root.if_array()) {
        // JSON-RPC 2.0 section 6: an empty array is an Invalid Request.
        if (batch->empty()) {
            return fail(Errc::invalid_request, "empty batch");
        }
        if (batch->size() > limits.max_batch) {
            return fail(Errc::batch_too_long, std::to_string(batch->size()) +
                                                  " messages, the limit is " +
                                                  std::to_string(limits.max_batch));
        }
        parsed.batch = true;
        parsed.items.reserve(batch->size());
        for (json::value& element : *batch) {
            parsed.items.push_back(classify(std::move(element)));
        }
        return parsed;
    }
    if (!root.is_object()) {
        return fail(Errc::invalid_request, "a JSON-RPC message must be an object or an array");
    }
    parsed.items.push_back(classify(std::move(root)));
    return parsed;
}

json::object make_request(const json::value& id, std::string_view method, json::object params) {
    json::object m;
    m["jsonrpc"] = "2.0";
    m["id"] = id;
    m["method"] = method;
    m["params"] = std::move(params);
    return m;
}

json::object make_notification(std::string_view method, json::object params) {
    json::object m;
    m["jsonrpc"] = "2.0";
    m["method"] = method;
    if (!params.empty()) {
        m["params"] = std::move(params);
    }
    return m;
}

json::object make_result(const json::value& id, json::value result) {
    json::object m;
    m["jsonrpc"] = "2.0";
    m["id"] = id;
    m["result"] = std::move(result);
    return m;
}

json::object make_error(const json::value& id, int error_code, std::string_view message,
                        json::value data) {
    json::object error;
    error["code"] = error_code;
    error["message"] = message;
    if (!data.is_null()) {
        error["data"] = std::move(data);
    }
    json::object m;
    m["jsonrpc"] = "2.0";
    m["id"] = id;
    m["error"] = std::move(error);
    return m;
}

json::object make_error(const Error& parse_failure) {
    const int c = jsonrpc_code(parse_failure);
    std::string text = c == code::parse_error ? "Parse error" : "Invalid Request";
    text += ": " + parse_failure.code.message();
    if (!parse_failure.detail.empty()) {
        text += " (" + parse_failure.detail + ")";
    }
    return make_error(nullptr, c, text);
}

json::object make_error(const Invalid& invalid) {
    return make_error(invalid.id, code::invalid_request, "Invalid Request: " + invalid.reason);
}

std::string serialize(const json::object& message) {
    return json::serialize(message);
}

std::string serialize(const json::value& message) {
    return json::serialize(message);
}

std::string id_text(const json::value& id) {
    // Integers (what most clients send) without a serializer: the same text.
    if (id.is_int64()) {
        return std::to_string(id.get_int64());
    }
    if (id.is_uint64()) {
        return std::to_string(id.get_uint64());
    }
    return json::serialize(id);
}

json::object& writable_params(json::object& message) {
    auto& params = message["params"];
    if (!params.is_object()) {
        params = json::object{};
    }
    return params.as_object();
}

json::object& writable_meta(json::object& message) {
    auto& meta = writable_params(message)["_meta"];
    if (!meta.is_object()) {
        meta = json::object{};
    }
    return meta.as_object();
}

std::string_view envelope_version(const json::object& message) noexcept {
    const auto* p = message.if_contains("params");
    const auto* meta =
        p != nullptr && p->is_object() ? p->as_object().if_contains("_meta") : nullptr;
    const auto* v = meta != nullptr && meta->is_object()
                        ? meta->as_object().if_contains(k_meta_protocol_version)
                        : nullptr;
    return v != nullptr && v->is_string() ? std::string_view(v->get_string()) : std::string_view{};
}

}  // namespace pqmcp::mcp
