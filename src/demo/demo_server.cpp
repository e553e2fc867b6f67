#include "pqmcp/demo/demo_server.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "pqmcp/mcp/protocol.hpp"
#include "pqmcp/transport/line_io.hpp"

namespace pqmcp::demo {
namespace json = boost::json;

namespace {

// The tool definitions, as JSON (parsed once).
constexpr std::string_view k_tools = R"json([
 {"name":"echo","title":"Echo",
  "description":"Returns the message it is given, unchanged.",
  "inputSchema":{"type":"object","properties":{
    "message":{"type":"string","description":"Text to send back"}},
   "required":["message"],"additionalProperties":false},
  "annotations":{"readOnlyHint":true,"idempotentHint":true,"openWorldHint":false}},
 {"name":"add","title":"Add two numbers",
  "description":"Adds two numbers and returns the sum.",
  "inputSchema":{"type":"object","properties":{
    "a":{"type":"number","description":"First addend"},
    "b":{"type":"number","description":"Second addend"}},
   "required":["a","b"],"additionalProperties":false},
  "annotations":{"readOnlyHint":true,"idempotentHint":true,"openWorldHint":false}},
 {"name":"process_refund","title":"Process a refund",
  "description":"Issues a refund for an order (demo data: nothing is paid out).",
  "inputSchema":{"type":"object","properties":{
    "order_id":{"type":"string","description":"Order number, e.g. ORD-1001","minLength":1,"maxLength":64},
    "amount":{"type":"number","description":"Amount to refund","exclusiveMinimum":0},
    "currency":{"type":"string","description":"ISO 4217 currency code","pattern":"^[A-Z]{3}$"},
    "reason":{"type":"string","description":"Why the refund is issued","maxLength":1000}},
   "required":["order_id","amount","currency","reason"],"additionalProperties":false},
  "annotations":{"readOnlyHint":false,"destructiveHint":false,"idempotentHint":false,"openWorldHint":true}},
 {"name":"get_patient_record","title":"Get a patient record",
  "description":"Returns the (fictitious) medical record of one patient.",
  "inputSchema":{"type":"object","properties":{
    "patient_id":{"type":"string","description":"Patient identifier, e.g. P0001","minLength":1,"maxLength":32},
    "purpose":{"type":"string","description":"Why the record is needed, e.g. treatment, billing, research"}},
   "required":["patient_id","purpose"],"additionalProperties":false},
  "annotations":{"readOnlyHint":true,"idempotentHint":true,"openWorldHint":false}},
 {"name":"search_records","title":"Search records",
  "description":"Searches the (fictitious) record store and returns matching entries.",
  "inputSchema":{"type":"object","properties":{
    "query":{"type":"string","description":"Words to look for","maxLength":500},
    "limit":{"type":"integer","description":"Maximum number of results","minimum":1,"maximum":50,"default":10}},
   "required":["query"],"additionalProperties":false},
  "annotations":{"readOnlyHint":true,"idempotentHint":true,"openWorldHint":false}}
])json";

const json::array& tool_definitions() {
    static const json::array tools = json::parse(k_tools).as_array();
    return tools;
}

// FNV-1a: a stable, non-cryptographic hash for picking fake data.
std::uint64_t fnv1a(std::string_view text) {
    std::uint64_t h = 14'695'981'039'346'656'037ULL;
    for (const char c : text) {
        h ^= static_cast<unsigned char>(c);
        h *= 1'099'511'628'211ULL;
    }
    return h;
}

template <std::size_t N>
std::string_view pick(const std::array<std::string_view, N>& options, std::uint64_t h) {
    return options[h % N];
}

json::object text_result(std::string_view text, bool is_error = false) {
    json::object content;
    content["type"] = "text";
    content["text"] = text;
    json::object result;
    result["content"] = json::array{std::move(content)};
    if (is_error) {
        result["isError"] = true;
    }
    return result;
}

std::string format_number(double value) {
    std::array<char, 64> buffer{};
    const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
    return ec == std::errc{} ? std::string(buffer.data(), end) : std::string("nan");
}

std::string format_money(double amount) {
    std::array<char, 64> buffer{};
    const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), amount,
                                         std::chars_format::fixed, 2);
    return ec == std::errc{} ? std::string(buffer.data(), end) : std::string("0.00");
}

const json::value* arg(const json::object& args, std::string_view key) {
    return args.if_contains(key);
}

std::optional<std::string> string_arg(const json::object& args, std::string_view key) {
    const auto* v = arg(args, key);
    if (v == nullptr || !v->is_string()) {
        return std::nullopt;
    }
    return std::string(v->get_string());
}

std::optional<double> number_arg(const json::object& args, std::string_view key) {
    const auto* v = arg(args, key);
    if (v == nullptr || !v->is_number()) {
        return std::nullopt;
    }
    return v->to_number<double>();
}

json::object call_echo(const json::object& args) {
    auto message = string_arg(args, "message");
    if (!message) {
        return text_result("echo: \"message\" must be a string", true);
    }
    return text_result(std::move(*message));
}

json::object call_add(const json::object& args) {
    const json::value* a = arg(args, "a");
    const json::value* b = arg(args, "b");
    if (a == nullptr || b == nullptr || !a->is_number() || !b->is_number()) {
        return text_result("add: \"a\" and \"b\" must be numbers", true);
    }
    std::string text;
    json::value sum;
    if (a->is_int64() && b->is_int64()) {
        std::int64_t s = 0;
        if (!__builtin_add_overflow(a->get_int64(), b->get_int64(), &s)) {
            text = std::to_string(s);
            sum = s;
        }
    }
    if (text.empty()) {
        const double s = a->to_number<double>() + b->to_number<double>();
        text = format_number(s);
        sum = s;
    }
    json::object result = text_result(text);
    result["structuredContent"] = json::object{{"sum", sum}};
    return result;
}

bool is_currency(std::string_view c) {
    return c.size() == 3 &&
           std::all_of(c.begin(), c.end(), [](char x) { return x >= 'A' && x <= 'Z'; });
}

json::object call_process_refund(const json::object& args) {
    const auto order = string_arg(args, "order_id");
    const auto amount = number_arg(args, "amount");
    const auto currency = string_arg(args, "currency");
    const auto reason = string_arg(args, "reason");
    if (!order || order->empty() || !amount || !currency || !reason) {
        return text_result(
            "process_refund: order_id (string), amount (number), currency (string) and reason "
            "(string) are required",
            true);
    }
    if (!(*amount > 0) || !std::isfinite(*amount)) {
        return text_result("process_refund: amount must be a positive number", true);
    }
    if (!is_currency(*currency)) {
        return text_result("process_refund: currency must be a three-letter ISO 4217 code", true);
    }
    const std::string money = format_money(*amount);
    const std::uint64_t h = fnv1a(*order + "|" + money + "|" + *currency);
    std::array<char, 17> id{};
    (void)std::to_chars(id.data(), id.data() + 16, h % 100'000'000ULL);
    const std::string refund_id = "RF-" + std::string(id.data());
    json::object result = text_result("Refund " + refund_id + " of " + money + " " + *currency +
                                      " for order " + *order + " issued.");
    result["structuredContent"] = json::object{{"refund_id", refund_id},
                                               {"order_id", *order},
                                               {"amount", *amount},
                                               {"currency", *currency},
                                               {"status", "issued"}};
    return result;
}

json::object patient_record(const std::string& patient_id, const std::string& purpose) {
    static constexpr std::array<std::string_view, 8> k_first = {
        "Alex", "Sam", "Robin", "Jordan", "Morgan", "Casey", "Riley", "Quinn"};
    static constexpr std::array<std::string_view, 8> k_last = {
        "Moreau", "Okafor", "Lindqvist", "Tanaka", "Alvarez", "Novak", "Haddad", "Brennan"};
    static constexpr std::array<std::string_view, 8> k_blood = {"O+", "O-", "A+",  "A-",
                                                                "B+", "B-", "AB+", "AB-"};
    static constexpr std::array<std::string_view, 6> k_conditions = {
        "hypertension", "type 2 diabetes", "asthma", "migraine", "none recorded", "hypothyroidism"};
    static constexpr std::array<std::string_view, 4> k_allergies = {"penicillin", "none known",
                                                                    "latex", "peanuts"};
    const std::uint64_t h = fnv1a(patient_id);
    json::object record;
    record["patient_id"] = patient_id;
    record["name"] = std::string(pick(k_first, h)) + " " + std::string(pick(k_last, h >> 8U));
    const auto year = 1940 + static_cast<int>((h >> 16U) % 70);
    const auto month = 1 + static_cast<int>((h >> 24U) % 12);
    const auto day = 1 + static_cast<int>((h >> 32U) % 28);
    std::array<char, 16> born{};
    (void)std::snprintf(born.data(), born.size(), "%04d-%02d-%02d", year, month, day);
    record["born"] = born.data();
    record["blood_type"] = pick(k_blood, h >> 40U);
    record["conditions"] = json::array{pick(k_conditions, h >> 44U)};
    record["allergies"] = json::array{pick(k_allergies, h >> 52U)};
    record["purpose"] = purpose;
    return record;
}

json::object call_get_patient_record(const json::object& args) {
    const auto id = string_arg(args, "patient_id");
    const auto purpose = string_arg(args, "purpose");
    if (!id || id->empty() || !purpose) {
        return text_result("get_patient_record: patient_id and purpose (strings) are required",
                           true);
    }
    json::object record = patient_record(*id, *purpose);
    json::object result = text_result(json::serialize(record));
    result["structuredContent"] = std::move(record);
    return result;
}

json::object call_search_records(const json::object& args) {
    const auto query = string_arg(args, "query");
    if (!query) {
        return text_result("search_records: query (string) is required", true);
    }
    std::int64_t limit = 10;
    if (const json::value* l = arg(args, "limit"); l != nullptr) {
        if (!l->is_int64() || l->get_int64() < 1 || l->get_int64() > 50) {
            return text_result("search_records: limit must be an integer from 1 to 50", true);
        }
        limit = l->get_int64();
    }
    // As many hits as the query's hash says, at most `limit`.
    const std::uint64_t h = fnv1a(*query);
    const auto total = static_cast<std::int64_t>(h % 23);
    const std::int64_t count = std::min(total, limit);
    json::array hits;
    for (std::int64_t i = 0; i < count; ++i) {
        const std::uint64_t hi = fnv1a(*query + "#" + std::to_string(i));
        json::object hit;
        hit["id"] = "REC-" + std::to_string(1000 + hi % 9000);
        hit["title"] = "Record " + std::to_string(i + 1) + " matching \"" + *query + "\"";
        hit["score"] = static_cast<double>(100 - i * 3) / 100.0;
        hits.push_back(std::move(hit));
    }
    json::object payload{{"query", *query}, {"total", total}, {"results", hits}};
    json::object result = text_result(json::serialize(payload));
    result["structuredContent"] = std::move(payload);
    return result;
}

}  // namespace

json::object DemoServer::tools_list() {
    return json::object{{"tools", tool_definitions()}};
}

std::optional<json::object> DemoServer::handle(const mcp::Message& message) {
    if (!message.is_request()) {
        return std::nullopt;  // notifications and responses need no answer
    }
    const json::value& id = message.id;
    const std::string& m = message.method;
    if (m == mcp::method::initialize) {
        std::string_view requested;
        if (const auto* p = message.params(); p != nullptr) {
            if (const auto* v = p->if_contains("protocolVersion"); v != nullptr && v->is_string()) {
                requested = v->get_string();
            }
        }
        protocol_version_ = std::string(mcp::negotiate_version(requested));
        json::object result;
        result["protocolVersion"] = protocol_version_;
        result["capabilities"] = json::object{{"tools", json::object{{"listChanged", false}}}};
        result["serverInfo"] = json::object{{"name", k_server_name}, {"version", "0.1.0"}};
        result["instructions"] =
            "Demo tools with fictitious data: echo, add, process_refund, get_patient_record, "
            "search_records.";
        return mcp::make_result(id, std::move(result));
    }
    if (m == mcp::method::ping) {
        return mcp::make_result(id, json::object{});
    }
    if (m == mcp::method::tools_list) {
        return mcp::make_result(id, tools_list());
    }
    if (m == mcp::method::tools_call) {
        static const json::object k_no_args;
        const json::object* params = message.params();
        const json::object* args = &k_no_args;
        if (params != nullptr) {
            if (const auto* a = params->if_contains("arguments"); a != nullptr) {
                if (!a->is_object()) {
                    return mcp::make_error(id, mcp::code::invalid_params,
                                           "\"arguments\" must be an object");
                }
                args = &a->get_object();
            }
        }
        const std::string& tool = message.name;
        if (tool == "echo") {
            return mcp::make_result(id, call_echo(*args));
        }
        if (tool == "add") {
            return mcp::make_result(id, call_add(*args));
        }
        if (tool == "process_refund") {
            return mcp::make_result(id, call_process_refund(*args));
        }
        if (tool == "get_patient_record") {
            return mcp::make_result(id, call_get_patient_record(*args));
        }
        if (tool == "search_records") {
            return mcp::make_result(id, call_search_records(*args));
        }
        return mcp::make_error(id, mcp::code::invalid_params, "Unknown tool: " + tool);
    }
    return mcp::make_error(id, mcp::code::method_not_found, "Method not found: " + m);
}

int run_stdio(int in_fd, int out_fd, const mcp::Limits& limits) {
    DemoServer server;
    transport::LineReader reader(in_fd, limits.max_message_bytes);
    while (auto line = reader.next()) {
        std::vector<json::object> replies;
        if (!*line) {
            if (line->error().code == transport::Errc::io_error) {
                return 1;
            }
            replies.push_back(mcp::make_error(
                Error{make_error_code(mcp::Errc::too_large), line->error().detail}));
        } else if (auto parsed = mcp::parse(**line, limits); !parsed) {
            replies.push_back(mcp::make_error(parsed.error()));
        } else {
            for (auto& item : parsed->items) {
                if (!item) {
                    replies.push_back(mcp::make_error(item.error()));
                } else if (auto reply = server.handle(*item)) {
                    replies.push_back(std::move(*reply));
                }
            }
            if (parsed->batch && !replies.empty()) {
                json::array batch;
                for (auto& r : replies) {
                    batch.push_back(std::move(r));
                }
                if (!transport::write_line(out_fd, mcp::serialize(json::value(std::move(batch))))) {
                    return 1;
                }
                continue;
            }
        }
        for (const auto& reply : replies) {
            if (!transport::write_line(out_fd, mcp::serialize(reply))) {
                return 1;
            }
        }
    }
    return 0;
}

}  // namespace pqmcp::demo
