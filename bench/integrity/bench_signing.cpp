// What signing a served list adds: a 50-tool tools/list result (descriptions
// and schemas of the demo server's size) serialized as the gateway always
// does (the baseline), put in RFC 8785 form, signed with ML-DSA-65 (the
// gateway's default identity), ML-DSA-87 and Ed25519, and verified as
// `pqmcp connect` does.
#include <benchmark/benchmark.h>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "pqmcp/identity/identity.hpp"
#include "pqmcp/integrity/jcs.hpp"
#include "pqmcp/integrity/signing.hpp"

namespace {

namespace json = boost::json;
namespace integrity = pqmcp::integrity;

json::object fifty_tools() {
    json::array tools;
    for (int i = 0; i < 50; ++i) {
        tools.push_back(json::parse(fmt::format(
            R"({{"name":"tool_{0}","title":"Tool {0}","description":"Looks up record {0} in the )"
            R"(archive and returns its fields as text; the limit caps how many are returned.",)"
            R"("inputSchema":{{"type":"object","properties":{{"query":{{"type":"string",)"
            R"("description":"what to look for"}},"limit":{{"type":"integer","minimum":1,)"
            R"("maximum":100,"default":10}}}},"required":["query"]}},)"
            R"("annotations":{{"readOnlyHint":true}}}})",
            i)));
    }
    return json::object{{"tools", std::move(tools)}};
}

pqmcp::identity::Identity make_identity(pqmcp::crypto::SigAlg alg) {
    pqmcp::identity::KeygenOptions options;
    options.algorithm = alg;
    auto id = pqmcp::identity::generate(options);
    if (!id) {
        std::abort();
    }
    return std::move(*id);
}

void serialize_list(benchmark::State& state) {
    const json::object list = fifty_tools();
    for (auto _ : state) {
        benchmark::DoNotOptimize(json::serialize(list));
    }
}
BENCHMARK(serialize_list)->Unit(benchmark::kMicrosecond);

void canonicalize_list(benchmark::State& state) {
    const json::value list = fifty_tools();
    for (auto _ : state) {
        benchmark::DoNotOptimize(integrity::canonicalize(list));
    }
}
BENCHMARK(canonicalize_list)->Unit(benchmark::kMicrosecond);

void sign_list(benchmark::State& state, pqmcp::crypto::SigAlg alg) {
    const auto id = make_identity(alg);
    auto signer = integrity::make_signer(id);
    const json::object list = fifty_tools();
    for (auto _ : state) {
        json::object copy = list;
        if (!integrity::sign_result(copy, "tools/list", *signer, "2026-11-24T10:00:00Z")) {
            state.SkipWithError("sign failed");
        }
        benchmark::DoNotOptimize(json::serialize(copy));
    }
}
BENCHMARK_CAPTURE(sign_list, ml_dsa_65, pqmcp::crypto::SigAlg::ml_dsa_65)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(sign_list, ml_dsa_87, pqmcp::crypto::SigAlg::ml_dsa_87)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(sign_list, ed25519, pqmcp::crypto::SigAlg::ed25519)
    ->Unit(benchmark::kMicrosecond);

void verify_list(benchmark::State& state) {
    const auto id = make_identity(pqmcp::crypto::SigAlg::ml_dsa_65);
    auto signer = integrity::make_signer(id);
    json::object list = fifty_tools();
    if (!integrity::sign_result(list, "tools/list", *signer, "2026-11-24T10:00:00Z")) {
        std::abort();
    }
    const std::string wire = json::serialize(list);
    for (auto _ : state) {
        // As the bridge meets it: parsed from the wire, then verified.
        const json::value parsed = json::parse(wire);
        benchmark::DoNotOptimize(
            integrity::verify_result(parsed.as_object(), "tools/list", &id.id));
    }
}
BENCHMARK(verify_list)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
