// pqmcp bench: the measurement a user runs on their own machine (docs/benchmarks.md).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include <fmt/format.h>

#include "commands.hpp"
#include "pqmcp/measure/measure.hpp"

namespace pqmcp::cli {
namespace {

struct BenchArgs {
    bool quick = false;
    bool json = false;
    std::string out = "pqmcp-bench";
    std::string gateway;
    std::string pin;
    std::string identity;
    std::string tool = "demo__echo";  // the built-in demo's echo, behind `make run`'s gateway
    std::string arguments;
    std::size_t requests = 0;  // 0: 2,000 (300 with --quick)
};

bool write_file(const std::filesystem::path& path, const std::string& text) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << text;
    f.close();
    return static_cast<bool>(f);
}

int run_bench(const BenchArgs& args) {
    measure::Report report;
    report.pqmcp_version = PQMCP_VERSION;
    report.quick = args.quick;
    report.budget = args.quick ? measure::quick_budget() : measure::Budget{};
    measure::describe_machine(report);
    std::error_code ec;
    std::filesystem::create_directories(args.out, ec);
    if (ec) {
        std::cerr << "pqmcp bench: --out " << args.out << ": " << ec.message() << "\n";
        return k_exit_error;
    }
    const auto start = std::chrono::steady_clock::now();
    const measure::Progress progress = [&start](const std::string& step) {
        const double s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::cerr << fmt::format("pqmcp bench [{:6.1f} s] {}", s, step) << std::endl;
    };
    using Step = Result<measure::Section> (*)(const measure::Budget&, const measure::Progress&);
    for (const Step step :
         {Step{&measure::key_exchanges}, Step{&measure::signatures}, Step{&measure::handshakes}}) {
        auto section = step(report.budget, progress);
        if (!section) {
            std::cerr << "pqmcp bench: " << section.error().message() << "\n";
            return k_exit_error;
        }
        report.sections.push_back(std::move(*section));
    }
    if (!args.gateway.empty()) {
        measure::GatewayTarget target;
        target.url = args.gateway;
        target.pin = args.pin;
        target.identity = args.identity;
        target.tool = args.tool;
        target.arguments = args.arguments;
        target.requests = args.requests > 0 ? args.requests : (args.quick ? 300 : 2000);
        target.warmup = args.quick ? 50 : 200;
        auto section = measure::gateway_calls(target, progress);
        if (!section) {
            std::cerr << "pqmcp bench: " << section.error().message() << "\n";
            return k_exit_error;
        }
        report.sections.push_back(std::move(*section));
    }
    const std::filesystem::path dir(args.out);
    const std::string json = measure::to_json(report);
    if (!write_file(dir / "bench.json", json) ||
        !write_file(dir / "report.html", measure::to_html(report))) {
        std::cerr << "pqmcp bench: cannot write to " << args.out << "\n";
        return k_exit_error;
    }
    // Each chart also as an image of its own (docs/benchmarks.md shows them).
    for (const auto& section : report.sections) {
        if (!section.bytes_meaning.empty() &&
            !write_file(dir / (section.id + ".svg"), measure::chart_svg(section))) {
            std::cerr << "pqmcp bench: cannot write to " << args.out << "\n";
            return k_exit_error;
        }
    }
    if (args.json) {
        std::cout << json;
    } else {
        std::cout << measure::to_table(report) << "\nwritten: " << (dir / "bench.json").string()
                  << ", " << (dir / "report.html").string() << "\n";
    }
    return k_exit_ok;
}

}  // namespace

void add_bench_command(CLI::App& app, int& exit_code) {
    auto args = std::make_shared<BenchArgs>();
    CLI::App* cmd = app.add_subcommand(
        "bench",
        "Measure PQ and classical key exchange, signatures and TLS handshakes on this machine "
        "(and tools/call through a gateway); write bench.json and an HTML chart");
    cmd->add_flag("--quick", args->quick, "short rounds (seconds instead of about a minute)");
    cmd->add_option(
        "--out", args->out,
        "directory for bench.json, report.html and one SVG per chart (default ./pqmcp-bench)");
    cmd->add_flag("--json", args->json, "print bench.json instead of the table");
    cmd->add_option("--gateway", args->gateway,
                    "also measure tools/call through this gateway, https://HOST:PORT/mcp");
    cmd->add_option("--pin", args->pin, "the gateway's peer id (with --gateway)");
    cmd->add_option("--identity", args->identity,
                    "client identity directory for --gateway (default: a fresh one)");
    cmd->add_option(
        "--tool", args->tool,
        "the tool to call (default demo__echo, the demo server's echo as the gateway names it)");
    cmd->add_option("--arguments", args->arguments,
                    "the call's arguments, a JSON object (default: the demo tools' own)");
    cmd->add_option("--requests", args->requests,
                    "measured calls through the gateway (default 2000, 300 with --quick)")
        ->check(CLI::Range(1, 10'000'000));
    cmd->callback([args, &exit_code] { exit_code = run_bench(*args); });
}

}  // namespace pqmcp::cli
