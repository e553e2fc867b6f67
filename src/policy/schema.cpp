#include "pqmcp/policy/schema.hpp"

#include <boost/json/serialize.hpp>
#include <valijson/adapters/boost_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include <algorithm>
#include <mutex>
#include <unordered_map>

namespace pqmcp::policy {
namespace json = boost::json;

struct SchemaCache::Entry {
    std::string text;  // the schema as served, to notice a change
    json::value value;
    std::unique_ptr<valijson::Schema> schema;
    std::string error;
};

namespace {

// One compiled schema per distinct text in the process: every session
// learns the same tools, and a compiled schema is some kilobytes. Entries are
// immutable once made (checking only reads them), so sessions on any thread
// share them; the table forgets a schema when no session holds it.
class Compiled final {
  public:
    std::shared_ptr<const SchemaCache::Entry> get(std::string text, const json::value& input) {
        {
            const std::scoped_lock lock(mutex_);
            if (const auto it = by_text_.find(text); it != by_text_.end()) {
                if (auto live = it->second.lock()) {
                    return live;
                }
            }
        }
        // Compiled outside the lock; two threads may compile the same text
        // at once, and the second keeps the first's.
        auto made = compile(std::move(text), input);
        const std::scoped_lock lock(mutex_);
        auto& slot = by_text_[made->text];
        if (auto live = slot.lock()) {
            return live;
        }
        slot = made;
        if (by_text_.size() >= sweep_at_) {
            std::erase_if(by_text_, [](const auto& item) { return item.second.expired(); });
            sweep_at_ = std::max<std::size_t>(64, 2 * by_text_.size());
        }
        return made;
    }

    std::size_t live() {
        const std::scoped_lock lock(mutex_);
        return static_cast<std::size_t>(
            std::count_if(by_text_.begin(), by_text_.end(),
                          [](const auto& item) { return !item.second.expired(); }));
    }

  private:
    static std::shared_ptr<const SchemaCache::Entry> compile(std::string text,
                                                             const json::value& input) {
        auto entry = std::make_shared<SchemaCache::Entry>();
        entry->text = std::move(text);
        entry->value = input;
        try {
            // Draft 7 covers what MCP servers publish (the SDKs emit draft-07 or
            // 2020-12 schemas using the same keywords). No remote $ref is fetched.
            valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
            const valijson::adapters::BoostJsonAdapter adapter(entry->value);
            entry->schema = std::make_unique<valijson::Schema>();
            parser.populateSchema(adapter, *entry->schema);
        } catch (const std::exception& e) {
            entry->schema.reset();
            entry->error = e.what();
        }
        return entry;
    }

    std::mutex mutex_;
    std::unordered_map<std::string, std::weak_ptr<const SchemaCache::Entry>> by_text_;
    std::size_t sweep_at_ = 64;
};

Compiled& compiled() {
    static Compiled table;
    return table;
}

}  // namespace

SchemaCache::SchemaCache() = default;
SchemaCache::~SchemaCache() = default;
SchemaCache::SchemaCache(SchemaCache&&) noexcept = default;
SchemaCache& SchemaCache::operator=(SchemaCache&&) noexcept = default;

void SchemaCache::learn(const std::string& tool, const json::object& definition) {
    const auto* input = definition.if_contains("inputSchema");
    if (input == nullptr || !input->is_object()) {
        entries_.erase(tool);
        return;
    }
    std::string text = json::serialize(*input);
    if (const auto it = entries_.find(tool); it != entries_.end() && it->second->text == text) {
        return;
    }
    entries_[tool] = compiled().get(std::move(text), *input);
}

std::size_t SchemaCache::compiled_schemas() {
    return compiled().live();
}

bool SchemaCache::knows(const std::string& tool) const {
    return entries_.contains(tool);
}

std::string SchemaCache::check(const std::string& tool, const json::value& arguments) const {
    const auto it = entries_.find(tool);
    if (it == entries_.end()) {
        return {};
    }
    const Entry& e = *it->second;
    if (!e.schema) {
        return "the tool's inputSchema cannot be used to check arguments: " + e.error;
    }
    valijson::Validator validator(valijson::Validator::kStrongTypes);
    valijson::ValidationResults results;
    const valijson::adapters::BoostJsonAdapter target(arguments);
    try {
        if (validator.validate(*e.schema, target, &results)) {
            return {};
        }
    } catch (const std::exception& ex) {
        return std::string("the arguments cannot be checked: ") + ex.what();
    }
    // The errors that say what is wrong where (valijson adds one per level
    // above them, "failed to validate against schema associated with ...").
    std::string out;
    valijson::ValidationResults::Error error;
    std::size_t shown = 0;
    while (results.popError(error) && shown < 3) {
        if (error.description.rfind("Failed to validate against schema associated with", 0) == 0) {
            continue;
        }
        std::string where;
        for (const auto& part : error.context) {
            if (part == "<root>") {
                continue;
            }
            // "[amount]" -> "/amount", "[0]" -> "/0"
            where += "/";
            where += part.size() >= 2 && part.front() == '[' && part.back() == ']'
                         ? part.substr(1, part.size() - 2)
                         : part;
        }
        if (!out.empty()) {
            out += "; ";
        }
        out += (where.empty() ? "(arguments)" : where) + ": " + error.description;
        ++shown;
    }
    return out.empty() ? "the arguments do not match the tool's inputSchema" : out;
}

}  // namespace pqmcp::policy
