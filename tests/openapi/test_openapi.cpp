// OpenAPI descriptions as MCP tools: versions (3.0, 3.1, Swagger 2.0), JSON
// and YAML, $refs (local, relative files, remote refused, cycles), hostile
// and awkward specs (each with its specific error), names, schemas, the
// HTTP request of a call, the result of an answer, the starting policy.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>

#include <boost/json.hpp>

#include "../common/temp_dir.hpp"
#include "pqmcp/openapi/openapi.hpp"
#include "pqmcp/policy/policy.hpp"

namespace pqmcp::openapi {
namespace {

namespace json = boost::json;

Catalog must(std::string_view text, const Options& o = {}) {
    auto c = parse(text, "spec.yaml", {}, o);
    EXPECT_TRUE(c) << (c ? "" : c.error().message());
    return c ? std::move(*c) : Catalog{};
}

Error error_of(std::string_view text, const Options& o = {}) {
    auto c = parse(text, "spec.yaml", {}, o);
    EXPECT_FALSE(c) << "expected an error";
    return c ? Error{} : c.error();
}

const Operation& op(const Catalog& c, std::string_view tool) {
    const auto* o = c.find(tool);
    if (o == nullptr) {
        ADD_FAILURE() << "no tool " << tool;
        static const Operation none;
        return none;
    }
    return *o;
}

constexpr std::string_view k_pets30 = R"(
openapi: 3.0.3
info: { title: Pets, version: "2.1" }
servers: [{ url: "https://api.example.com/{stage}", variables: { stage: { default: v1 } } }]
paths:
  /pets/{petId}:
    parameters:
      - { name: petId, in: path, required: true, schema: { type: integer, minimum: 1 } }
    get:
      operationId: getPet
      summary: One pet
      description: Returns the pet.
      parameters:
        - { name: verbose, in: query, schema: { type: boolean } }
        - { name: X-Trace, in: header, schema: { type: string } }
        - { name: Authorization, in: header, schema: { type: string } }
        - { name: petId, in: query, schema: { type: string } }
      responses:
        "200":
          description: ok
          content:
            application/json: { schema: { $ref: "#/components/schemas/Pet" } }
    delete:
      operationId: deletePet
      responses: { "204": { description: gone } }
  /pets:
    get:
      operationId: listPets
      tags: [pets]
      parameters:
        - { name: status, in: query, style: form, explode: false, schema: { type: array, items: { type: string, enum: [a, b] } } }
      responses:
        "200": { description: ok, content: { application/json: { schema: { type: array, items: { $ref: "#/components/schemas/Pet" } } } } }
    post:
      operationId: addPet
      tags: [admin]
      requestBody:
        required: true
        content: { application/json: { schema: { $ref: "#/components/schemas/Pet" } } }
      responses: { "201": { description: made } }
components:
  schemas:
    Pet:
      type: object
      required: [name]
      properties:
        name: { type: string, maxLength: 40, pattern: "^[a-z]+$" }
        weight: { type: number, maximum: 100, exclusiveMaximum: true, nullable: true }
        x-internal: { type: string }
        tag: { type: string, x-vendor: 1, xml: { name: t } }
        parent: { $ref: "#/components/schemas/Pet" }
        friends: { type: array, items: { $ref: "#/components/schemas/Pet" } }
      example: { name: rex }
)";

TEST(OpenApi, ThreeZeroBecomesTools) {
    const Catalog c = must(k_pets30);
    EXPECT_EQ(c.spec_version, "3.0.3");
    EXPECT_EQ(c.title, "Pets");
    ASSERT_EQ(c.servers.size(), 1U);
    EXPECT_EQ(c.servers[0], "https://api.example.com/v1");
    ASSERT_EQ(c.operations.size(), 4U);
    const Operation& get = op(c, "getPet");
    EXPECT_EQ(get.method, "GET");
    EXPECT_EQ(get.description, "One pet\n\nReturns the pet.");
    EXPECT_EQ(get.annotations.at("readOnlyHint"), json::value(true));
    // The path's petId keeps its name; the query's is told apart; Authorization is ignored.
    const auto& props = get.input_schema.at("properties").as_object();
    EXPECT_TRUE(props.contains("petId"));
    EXPECT_TRUE(props.contains("query_petId"));
    EXPECT_TRUE(props.contains("X-Trace"));
    EXPECT_FALSE(props.contains("Authorization"));
    EXPECT_EQ(get.input_schema.at("required"), json::array{"petId"});
    EXPECT_EQ(get.input_schema.at("additionalProperties"), json::value(false));
    // The output: the Pet object itself, recursion kept as a reference.
    ASSERT_TRUE(get.output_schema);
    EXPECT_FALSE(get.wrapped_output);
    EXPECT_EQ(get.output_schema->at("type"), json::value("object"));
    const auto& defs = get.output_schema->at("$defs").as_object();
    const auto& pet = defs.at("Pet").as_object();
    EXPECT_EQ(pet.at("properties").at("parent"), (json::object{{"$ref", "#/$defs/Pet"}}));
    // 3.0 -> 2020-12: nullable, boolean exclusiveMaximum, example; x- left out.
    const auto& weight = pet.at("properties").at("weight").as_object();
    EXPECT_EQ(weight.at("type"), (json::array{"number", "null"}));
    EXPECT_EQ(weight.at("exclusiveMaximum"), json::value(100));
    EXPECT_FALSE(weight.contains("maximum"));
    // A property may be called x-anything; an extension keyword is left out.
    EXPECT_TRUE(pet.at("properties").as_object().contains("x-internal"));
    EXPECT_EQ(pet.at("properties").at("tag"), (json::object{{"type", "string"}}));
    EXPECT_EQ(pet.at("examples"), (json::array{json::object{{"name", "rex"}}}));
    // An array answer is wrapped: structuredContent is an object.
    const Operation& list = op(c, "listPets");
    ASSERT_TRUE(list.output_schema);
    EXPECT_TRUE(list.wrapped_output);
    EXPECT_EQ(list.output_schema->at("required"), json::array{"result"});
    // The body, required, under "body"; DELETE destructive.
    const Operation& add = op(c, "addPet");
    ASSERT_TRUE(add.body);
    EXPECT_EQ(add.body->property, "body");
    EXPECT_EQ(add.input_schema.at("required"), json::array{"body"});
    EXPECT_EQ(op(c, "deletePet").annotations.at("destructiveHint"), json::value(true));
    EXPECT_FALSE(op(c, "deletePet").output_schema);
}

TEST(OpenApi, FiltersAndMaxTools) {
    Options o;
    o.include.tags = {"pets"};
    EXPECT_EQ(must(k_pets30, o).operations.size(), 1U);
    o = {};
    o.exclude.methods = {"delete", "POST"};
    const Catalog c = must(k_pets30, o);
    EXPECT_EQ(c.operations.size(), 2U);
    EXPECT_EQ(c.filtered_out, 2U);
    o = {};
    o.include.paths = {"/pets/*"};
    o.exclude.operations = {"delete*"};
    EXPECT_EQ(must(k_pets30, o).operations.size(), 1U);
    o = {};
    o.max_tools = 2;
    const Catalog few = must(k_pets30, o);
    EXPECT_EQ(few.operations.size(), 2U);
    EXPECT_EQ(few.over_limit, 2U);
    ASSERT_FALSE(few.warnings.empty());
    EXPECT_NE(few.warnings.back().message.find("2 more operations than max_tools (2)"),
              std::string::npos);
}

TEST(OpenApi, SwaggerTwoIsConverted) {
    const Catalog c = must(R"({
      "swagger": "2.0", "info": {"title": "Old", "version": "1"},
      "host": "old.example", "basePath": "/api", "schemes": ["https"],
      "consumes": ["application/json"],
      "paths": {
        "/items/{id}": {
          "get": {"operationId": "getItem",
                  "parameters": [{"name": "id", "in": "path", "required": true, "type": "integer", "minimum": 1},
                                 {"name": "tags", "in": "query", "type": "array", "items": {"type": "string"}, "collectionFormat": "pipes"}],
                  "responses": {"200": {"description": "ok", "schema": {"$ref": "#/definitions/Item"}}}},
          "put": {"operationId": "putItem",
                  "parameters": [{"name": "id", "in": "path", "required": true, "type": "integer"},
                                 {"name": "item", "in": "body", "required": true, "schema": {"$ref": "#/definitions/Item"}}],
                  "responses": {"200": {"description": "ok"}}}},
        "/login": {"post": {"operationId": "login", "consumes": ["application/x-www-form-urlencoded"],
                  "parameters": [{"name": "user", "in": "formData", "type": "string", "required": true},
                                 {"name": "pass", "in": "formData", "type": "string"}],
                  "responses": {"200": {"description": "ok"}}}},
        "/upload": {"post": {"operationId": "upload",
                  "parameters": [{"name": "file", "in": "formData", "type": "file"}],
                  "responses": {"200": {"description": "ok"}}}}},
      "definitions": {"Item": {"type": "object", "properties": {"name": {"type": "string"}, "note": {"type": "file"}}}}
    })");
    EXPECT_EQ(c.spec_version, "2.0");
    ASSERT_EQ(c.servers.size(), 1U);
    EXPECT_EQ(c.servers[0], "https://old.example/api");
    ASSERT_EQ(c.operations.size(), 3U);  // the file upload is left out, with a warning
    EXPECT_EQ(c.skipped, 1U);
    const Operation& get = op(c, "getItem");
    EXPECT_EQ(get.input_schema.at("properties").at("id"),
              (json::object{{"type", "integer"}, {"minimum", 1}}));
    EXPECT_EQ(get.parameters[1].style, "pipeDelimited");
    ASSERT_TRUE(get.output_schema);
    EXPECT_EQ(get.output_schema->at("properties").at("note"),
              (json::object{{"type", "string"}, {"format", "binary"}}));
    const Operation& put = op(c, "putItem");
    ASSERT_TRUE(put.body);
    EXPECT_EQ(put.body->media_type, "application/json");
    const Operation& login = op(c, "login");
    ASSERT_TRUE(login.body);
    EXPECT_EQ(login.body->media_type, "application/x-www-form-urlencoded");
    EXPECT_EQ(login.input_schema.at("properties").at("body").at("required"), json::array{"user"});
}

TEST(OpenApi, ThreeOneKeepsJsonSchema) {
    const Catalog c = must(R"(
openapi: 3.1.0
info: { title: New, version: "1" }
paths:
  /things:
    post:
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                kind: { type: [string, "null"], const: box }
                ref: { $ref: "#/components/schemas/Thing", description: "beside the ref" }
      responses: { "200": { description: ok, content: { application/json: { schema: { type: string } } } } }
components: { schemas: { Thing: { type: integer, exclusiveMinimum: 0 } } }
webhooks: {}
)");
    ASSERT_EQ(c.operations.size(), 1U);
    const Operation& o = c.operations[0];
    EXPECT_EQ(o.tool, "post_things");  // no operationId: method and path
    const auto& body = o.input_schema.at("properties").at("body").as_object();
    EXPECT_EQ(body.at("properties").at("kind").at("type"), (json::array{"string", "null"}));
    EXPECT_EQ(body.at("properties").at("ref"),
              (json::object{{"$ref", "#/$defs/Thing"}, {"description", "beside the ref"}}));
    EXPECT_EQ(o.input_schema.at("$defs").at("Thing").at("exclusiveMinimum"), json::value(0));
    EXPECT_TRUE(o.wrapped_output);
}

TEST(OpenApi, RefsAcrossFilesStayUnderTheSpecsDirectory) {
    test::TempDir dir;
    std::filesystem::create_directories(dir.path() / "api" / "schemas");
    const auto write = [](const std::filesystem::path& p, std::string_view text) {
        std::ofstream(p) << text;
    };
    write(dir.path() / "api" / "schemas" / "pet.yaml",
          "type: object\nproperties:\n  name: { type: string }\n  owner: { $ref: 'owner.json' }\n");
    write(
        dir.path() / "api" / "schemas" / "owner.json",
        R"({"type": "object", "properties": {"pets": {"type": "array", "items": {"$ref": "pet.yaml"}}}})");
    write(dir.path() / "secret.yaml", "type: string\n");
    const std::string spec = R"(
openapi: 3.0.0
info: { title: T, version: "1" }
paths:
  /pet:
    get:
      operationId: pet
      responses: { "200": { description: ok, content: { application/json: { schema: { $ref: "schemas/pet.yaml" } } } } }
)";
    write(dir.path() / "api" / "spec.yaml", spec);
    auto c = load(dir.path() / "api" / "spec.yaml");
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->documents, 3U);
    ASSERT_EQ(c->operations.size(), 1U);
    // A $ref to a file that is not a component is inlined; its cycle is cut with a warning.
    ASSERT_TRUE(c->operations[0].output_schema);
    EXPECT_FALSE(c->warnings.empty());

    // Out of the spec's directory: refused, and the operation is reported.
    std::string escaping = spec;
    escaping.replace(escaping.find("schemas/pet.yaml"), 16, "../secret.yaml");
    write(dir.path() / "api" / "spec.yaml", escaping);
    auto out = load(dir.path() / "api" / "spec.yaml");
    ASSERT_TRUE(out);
    EXPECT_TRUE(out->operations.empty());
    ASSERT_FALSE(out->warnings.empty());
    EXPECT_NE(out->warnings[0].message.find("leaves the spec's directory"), std::string::npos)
        << out->warnings[0].message;
}

TEST(OpenApi, HostileSpecsGetTheirOwnErrors) {
    // A remote $ref is never fetched; the message names where it is.
    const Catalog remote = must(R"(
openapi: 3.0.0
info: { title: T, version: "1" }
paths:
  /x:
    get:
      responses: { "200": { description: ok, content: { application/json: { schema: { $ref: "https://evil.example/schema.json#/Pet" } } } } }
)");
    ASSERT_EQ(remote.skipped, 1U);
    EXPECT_NE(remote.warnings[0].message.find("never fetches a $ref"), std::string::npos);
    EXPECT_NE(remote.warnings[0].message.find("spec.yaml#/paths/~1x/get/responses/200/content/"
                                              "application~1json/schema/$ref"),
              std::string::npos)
        << remote.warnings[0].message;

    // $ref after $ref in a loop.
    const Catalog loop = must(R"(
openapi: 3.0.0
info: { title: T, version: "1" }
paths:
  /x: { $ref: "#/paths/~1y" }
  /y: { $ref: "#/paths/~1x" }
)");
    EXPECT_TRUE(loop.operations.empty());
    ASSERT_EQ(loop.warnings.size(), 2U);
    EXPECT_NE(loop.warnings[0].message.find("a loop"), std::string::npos);

    // Not a description at all, a version nobody reads, broken syntax.
    EXPECT_EQ(error_of("just: text").code, make_error_code(Errc::invalid));
    EXPECT_EQ(error_of("openapi: 4.0.0\ninfo: {}\npaths: {}").code,
              make_error_code(Errc::unsupported));
    const Error syntax = error_of("openapi: 3.0.0\npaths: {: ]");
    EXPECT_EQ(syntax.code, make_error_code(Errc::invalid));
    EXPECT_NE(syntax.detail.find("spec.yaml:2"), std::string::npos) << syntax.detail;
    EXPECT_EQ(error_of("{\"openapi\": ").code, make_error_code(Errc::invalid));

    // Too deep, too large, aliases that expand without end.
    const std::string deep = std::string(300, '[') + std::string(300, ']');
    EXPECT_EQ(error_of(deep).code, make_error_code(Errc::too_large));
    Options small;
    small.limits.max_bytes = 1'000;
    const Error big = error_of(std::string(2'000, ' ') + "openapi: 3.0.0", small);
    EXPECT_EQ(big.code, make_error_code(Errc::too_large));
    EXPECT_NE(big.detail.find("over the limit of 1000"), std::string::npos);
    std::string laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
    for (char c = 'b'; c <= 'k'; ++c) {
        laughs += std::string(1, c) + ": &" + std::string(1, c) + " [*" + std::string(1, c - 1) +
                  ", *" + std::string(1, c - 1) + ", *" + std::string(1, c - 1) + ", *" +
                  std::string(1, c - 1) + ", *" + std::string(1, c - 1) + "]\n";
    }
    const Error lol = error_of(laughs);
    EXPECT_EQ(lol.code, make_error_code(Errc::too_large));
    EXPECT_NE(lol.detail.find("aliases"), std::string::npos) << lol.detail;
}

TEST(OpenApi, TwentyMegabytesOfYamlAreRefusedQuickly) {
    std::string text = "openapi: 3.0.0\ninfo: { title: big, version: '1' }\npaths: {}\nx-pad: |\n";
    while (text.size() < 20U << 20U) {
        text += "  " + std::string(100, 'x') + "\n";
    }
    const auto started = std::chrono::steady_clock::now();
    const Error e = error_of(text);
    EXPECT_EQ(e.code, make_error_code(Errc::too_large));
    EXPECT_NE(e.detail.find("over the limit of 16777216"), std::string::npos) << e.detail;
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds{2});
}

TEST(OpenApi, TenThousandOperationsLoadAndAreBounded) {
    std::string text =
        R"({"openapi": "3.0.0", "info": {"title": "many", "version": "1"}, "paths": {)";
    for (int i = 0; i < 10'000; ++i) {
        text +=
            (i == 0 ? "" : ",") + std::string("\"/r") + std::to_string(i) +
            R"(/{id}": {"get": {"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"$ref": "#/components/schemas/Id"}}], "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}}}}}})";
    }
    text +=
        R"(}, "components": {"schemas": {"Id": {"type": "string"}, "Thing": {"type": "object", "properties": {"id": {"$ref": "#/components/schemas/Id"}, "next": {"$ref": "#/components/schemas/Thing"}}}}}})";
    Options o;
    o.max_tools = 10'000;
    const auto started = std::chrono::steady_clock::now();
    const Catalog all = must(text, o);
    const auto took = std::chrono::steady_clock::now() - started;
    EXPECT_EQ(all.operations.size(), 10'000U);
    EXPECT_EQ(all.operations.back().tool, "get_r9999_id");
    // Not a figure to assert on a shared machine; a bound that catches a quadratic walk.
    EXPECT_LT(took, std::chrono::seconds{30});
    // By default only max_tools of them, and the rest said.
    const Catalog some = must(text);
    EXPECT_EQ(some.operations.size(), 128U);
    EXPECT_EQ(some.over_limit, 10'000U - 128U);
    // And beyond max_operations the spec is refused.
    o.limits.max_operations = 5'000;
    const Error e = error_of(text, o);
    EXPECT_EQ(e.code, make_error_code(Errc::too_large));
    EXPECT_NE(e.detail.find("more than 5000 operations"), std::string::npos);
}

TEST(OpenApi, NamesAreValidShortAndUniqueAfterTruncation) {
    std::string text = "openapi: 3.0.0\ninfo: { title: T, version: '1' }\npaths:\n";
    const std::string longest(80, 'a');
    for (int i = 0; i < 3; ++i) {
        text += "  /p" + std::to_string(i) + ":\n    get:\n      operationId: " + longest +
                std::to_string(i) + "\n      responses: { '200': { description: ok } }\n";
    }
    text +=
        "  /same:\n    get:\n      operationId: 'list pets!'\n      responses: { '200': { "
        "description: ok } }\n";
    text +=
        "  /same2:\n    get:\n      operationId: list_pets\n      responses: { '200': { "
        "description: ok } }\n";
    Options o;
    o.prefix_length = 6;  // "pets__"
    const Catalog c = must(text, o);
    ASSERT_EQ(c.operations.size(), 5U);
    std::set<std::string> names;
    for (const auto& op : c.operations) {
        EXPECT_LE(op.tool.size() + 6, 64U) << op.tool;
        EXPECT_EQ(op.tool.find_first_not_of(
                      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"),
                  std::string::npos)
            << op.tool;
        EXPECT_TRUE(names.insert(op.tool).second) << "duplicate " << op.tool;
    }
    EXPECT_EQ(c.operations[3].tool, "list_pets");
    EXPECT_NE(c.operations[4].tool, "list_pets");  // the second one is told apart, and said
    // The same spec gives the same names.
    const Catalog again = must(text, o);
    for (std::size_t i = 0; i < c.operations.size(); ++i) {
        EXPECT_EQ(c.operations[i].tool, again.operations[i].tool);
    }
    EXPECT_GE(c.warnings.size(), 4U);
    o.prefix_length = 60;
    EXPECT_EQ(error_of(text, o).code, make_error_code(Errc::bad_options));
}

TEST(OpenApi, RequestsAreBuiltExactly) {
    const Catalog c = must(R"(
openapi: 3.0.0
info: { title: T, version: "1" }
paths:
  /files/{name}/v{ver}:
    post:
      operationId: op
      parameters:
        - { name: name, in: path, required: true, schema: { type: string } }
        - { name: ver, in: path, required: true, schema: { type: integer } }
        - { name: ids, in: query, schema: { type: array, items: { type: integer } } }
        - { name: csv, in: query, explode: false, schema: { type: array, items: { type: string } } }
        - { name: pipes, in: query, style: pipeDelimited, explode: false, schema: { type: array, items: { type: string } } }
        - { name: filter, in: query, style: deepObject, explode: true, schema: { type: object } }
        - { name: q, in: query, schema: { type: string } }
        - { name: X-Req, in: header, schema: { type: string } }
        - { name: session, in: cookie, schema: { type: string } }
      requestBody: { content: { application/json: { schema: { type: object } } } }
      responses: { "200": { description: ok } }
  /form:
    post:
      operationId: form
      requestBody: { required: true, content: { application/x-www-form-urlencoded: { schema: { type: object } } } }
      responses: { "200": { description: ok } }
)");
    const Operation& o = op(c, "op");
    json::object args{{"name", "a b/c"},  // refused below: '/' would add a segment
                      {"ver", 2}};
    auto refused = build_request(o, args);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, make_error_code(Errc::bad_arguments));
    EXPECT_NE(refused.error().detail.find("contains '/'"), std::string::npos);
    for (const char* bad : {"..", ".", "a\\b", "x\ny", ""}) {
        args["name"] = bad;
        EXPECT_FALSE(build_request(o, args)) << bad;
    }
    args["name"] = "%2e%2e";  // stays literal: encoded again
    args["ids"] = json::array{1, 2};
    args["csv"] = json::array{"x,y", "z"};
    args["pipes"] = json::array{"a", "b"};
    args["filter"] = json::object{{"color", "red"}, {"size", "L"}};
    args["q"] = "caf\xc3\xa9 & more";
    args["X-Req"] = "abc";
    args["session"] = "s 1";
    args["body"] = json::object{{"k", 1}};
    auto r = build_request(o, args);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->method, "POST");
    EXPECT_EQ(r->path, "/files/%252e%252e/v2");
    EXPECT_EQ(r->query,
              "ids=1&ids=2&csv=x%2Cy,z&pipes=a%7Cb&filter%5Bcolor%5D=red&filter%5Bsize%5D=L&"
              "q=caf%C3%A9%20%26%20more");
    EXPECT_EQ(r->body, R"({"k":1})");
    EXPECT_EQ(r->content_type, "application/json");
    bool header = false;
    bool cookie = false;
    for (const auto& [k, v] : r->headers) {
        header = header || (k == "X-Req" && v == "abc");
        cookie = cookie || (k == "Cookie" && v == "session=s%201");
    }
    EXPECT_TRUE(header);
    EXPECT_TRUE(cookie);
    // Header values cannot carry a line break (another header).
    args["X-Req"] = "a\r\nHost: evil";
    EXPECT_FALSE(build_request(o, args));
    // A missing required parameter or body is named.
    auto missing = build_request(op(c, "form"), json::object{});
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().detail.find("body is required"), std::string::npos);
    auto form = build_request(op(c, "form"),
                              json::object{{"body", json::object{{"user", "a b"}, {"n", 3}}}});
    ASSERT_TRUE(form);
    EXPECT_EQ(form->body, "user=a%20b&n=3");
}

TEST(OpenApi, AnswersBecomeResults) {
    const Catalog c = must(k_pets30);
    const Operation& get = op(c, "getPet");
    HttpAnswer ok{200, "OK", "application/json", R"({"name":"rex"})", false};
    json::object r = to_result(get, ok, "https://api/pets/1");
    EXPECT_EQ(r.at("structuredContent"), (json::object{{"name", "rex"}}));
    EXPECT_FALSE(r.contains("isError"));
    const Operation& list = op(c, "listPets");
    r = to_result(list, HttpAnswer{200, "OK", "application/json; charset=utf-8", "[1,2]", false},
                  "u");
    EXPECT_EQ(r.at("structuredContent"), (json::object{{"result", json::array{1, 2}}}));
    // An error status: isError with the status and a bounded excerpt.
    r = to_result(get, HttpAnswer{404, "Not Found", "text/plain", std::string(5'000, 'e'), false},
                  "u", 100);
    EXPECT_EQ(r.at("isError"), json::value(true));
    const std::string text(r.at("content").at(0).at("text").as_string());
    EXPECT_TRUE(text.starts_with("GET /pets/{petId}: HTTP 404 Not Found\n")) << text;
    EXPECT_LT(text.size(), 200U);
    // Binary: a blob; over the limit: said, not returned.
    r = to_result(get, HttpAnswer{200, "OK", "image/png", std::string("\x89PNG\x00\x01", 6), false},
                  "https://api/pets/1");
    EXPECT_EQ(r.at("content").at(0).at("type"), json::value("resource"));
    EXPECT_EQ(r.at("content").at(0).at("resource").at("blob"), json::value("iVBORwAB"));
    r = to_result(get, HttpAnswer{200, "OK", "application/json", "", true}, "u");
    EXPECT_EQ(r.at("isError"), json::value(true));
}

TEST(OpenApi, StartingPolicyLoadsAndAsksForWrites) {
    const Catalog c = must(k_pets30);
    const std::string yaml = starting_policy(c, "pets");
    auto p = policy::parse_policy(yaml, "generated.yaml");
    ASSERT_TRUE(p) << p.error().message() << "\n" << yaml;
    const auto decide = [&](std::string_view tool, const json::object& args) {
        policy::Request r;
        r.method = "tools/call";
        r.tool = tool;
        r.upstream = "pets";
        const json::value v = args;
        r.arguments = &v;
        return policy::evaluate(**p, r, nullptr, std::chrono::steady_clock::now());
    };
    EXPECT_EQ(decide("pets__getPet", {{"petId", 3}}).effect, policy::Effect::allow);
    EXPECT_EQ(decide("pets__getPet", {{"petId", 0}}).effect, policy::Effect::deny);  // minimum 1
    EXPECT_EQ(decide("pets__addPet", {{"body", json::object{{"name", "rex"}}}}).effect,
              policy::Effect::ask);
    EXPECT_EQ(decide("pets__addPet", {{"body", json::object{{"name", "Rex!"}}}}).effect,
              policy::Effect::deny);  // pattern
    EXPECT_EQ(decide("pets__deletePet", {{"petId", 3}}).effect, policy::Effect::deny);
    EXPECT_EQ(decide("pets__listPets", {}).effect, policy::Effect::allow);
}

}  // namespace
}  // namespace pqmcp::openapi
