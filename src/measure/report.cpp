// The report three ways: bench.json, a terminal table, and one self-contained
// HTML page with inline SVG charts (no scripts, nothing fetched).
#include <openssl/crypto.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <fstream>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <boost/json.hpp>

#include "pqmcp/measure/measure.hpp"

namespace pqmcp::measure {
namespace {

namespace json = boost::json;

// Chart geometry (pixels). The screenshot test reads bars back at these sizes.
constexpr int k_width = 960;
constexpr int k_height = 400;
constexpr int k_left = 80;
constexpr int k_right = 90;
constexpr int k_top = 50;
constexpr int k_bottom = 70;
constexpr int k_plot_w = k_width - k_left - k_right;
constexpr int k_plot_h = k_height - k_top - k_bottom;
constexpr const char* k_pq_colour = "#1f5f8b";
constexpr const char* k_classical_colour = "#9a9a9a";
constexpr const char* k_line_colour = "#d1495b";

json::object timing_json(const Timing& t) {
    return {{"us", t.us}, {"min_us", t.min_us}, {"max_us", t.max_us}, {"operations", t.operations}};
}

std::string escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::string bytes_text(std::uint64_t bytes) {
    std::string digits = std::to_string(bytes);
    for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) {
        digits.insert(static_cast<std::size_t>(i), ",");
    }
    return digits;
}

// The bytes axis ends at a round number: 1, 2 or 5 times a power of ten.
double round_up(double value) {
    if (value <= 0) {
        return 1;
    }
    const double magnitude = std::pow(10.0, std::floor(std::log10(value)));
    for (const double step : {1.0, 2.0, 5.0, 10.0}) {
        if (step * magnitude >= value) {
            return step * magnitude;
        }
    }
    return 10 * magnitude;
}

}  // namespace

std::string chart_svg(const Section& section) {
    const auto& rows = section.rows;
    double lo = 1e300;
    double hi = 0;
    std::uint64_t most_bytes = 0;
    for (const auto& r : rows) {
        lo = std::min(lo, r.timing.us);
        hi = std::max(hi, r.timing.us);
        most_bytes = std::max(most_bytes, r.bytes);
    }
    const double decade_lo = std::floor(std::log10(std::max(lo, 1e-3))) - 1;
    const double decade_hi = std::max(std::ceil(std::log10(std::max(hi, 1e-3))), decade_lo + 1);
    const double bytes_top = round_up(static_cast<double>(most_bytes));
    const auto y_of_us = [&](double us) {
        const double f = (std::log10(std::max(us, 1e-3)) - decade_lo) / (decade_hi - decade_lo);
        return static_cast<int>(std::lround(k_top + k_plot_h * (1 - std::clamp(f, 0.0, 1.0))));
    };
    const auto y_of_bytes = [&](double bytes) {
        return static_cast<int>(std::lround(k_top + k_plot_h * (1 - bytes / bytes_top)));
    };
    std::string s = fmt::format(
        R"(<svg id="chart-{}" class="chart" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" width="{}" height="{}" )"
        R"(viewBox="0 0 {} {}" data-decade-lo="{}" data-decade-hi="{}" data-bytes-top="{}" )"
        R"(data-plot-top="{}" data-plot-height="{}" role="img" aria-label="{}">)"
        "\n",
        section.id, k_width, k_height, k_width, k_height, decade_lo, decade_hi, bytes_top, k_top,
        k_plot_h, escape(section.title));
    s += fmt::format(R"(<rect x="0" y="0" width="{}" height="{}" fill="#ffffff"/>)"
                     "\n",
                     k_width, k_height);
    s += fmt::format(R"(<text x="{}" y="22" font-size="16" font-weight="bold">{}</text>)"
                     "\n",
                     k_left, escape(section.title));
    // Legend.
    const int ly = 38;
    s += fmt::format(
        R"(<rect x="{}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}" font-size="12">post-quantum</text>)"
        R"(<rect x="{}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}" font-size="12">classical</text>)"
        R"(<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="2"/><text x="{}" y="{}" font-size="12">bytes on the wire (right axis)</text>)"
        "\n",
        k_left, ly - 10, k_pq_colour, k_left + 16, ly, k_left + 110, ly - 10, k_classical_colour,
        k_left + 126, ly, k_left + 210, ly - 4, k_left + 234, ly - 4, k_line_colour, k_left + 240,
        ly);
    // Left axis: decades.
    for (int d = static_cast<int>(decade_lo); d <= static_cast<int>(decade_hi); ++d) {
        const double us = std::pow(10.0, d);
        const int y = y_of_us(us);
        const std::string label =
            us >= 1000 ? fmt::format("{:g} ms", us / 1000) : fmt::format("{:g} µs", us);
        s += fmt::format(
            R"(<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#e4e4e4"/><text x="{}" y="{}" font-size="11" text-anchor="end">{}</text>)"
            "\n",
            k_left, y, k_left + k_plot_w, y, k_left - 6, y + 4, label);
    }
    s += fmt::format(
        R"~(<text x="16" y="{}" font-size="12" transform="rotate(-90 16 {})" text-anchor="middle">time, log scale ({})</text>)~"
        "\n",
        k_top + k_plot_h / 2, k_top + k_plot_h / 2, escape(section.time_meaning));
    // Right axis: bytes.
    for (int i = 0; i <= 4; ++i) {
        const double b = bytes_top * i / 4;
        s += fmt::format(R"(<text x="{}" y="{}" font-size="11" fill="{}">{} B</text>)"
                         "\n",
                         k_left + k_plot_w + 6, y_of_bytes(b) + 4, k_line_colour,
                         bytes_text(static_cast<std::uint64_t>(b)));
    }
    s += fmt::format(R"(<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#555"/>)"
                     "\n",
                     k_left, k_top + k_plot_h, k_left + k_plot_w, k_top + k_plot_h);
    // Bars, then the line over them.
    const int slot = k_plot_w / static_cast<int>(std::max<std::size_t>(rows.size(), 1));
    const int bar_w = slot / 2;
    std::string points;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto& r = rows[i];
        const int x = k_left + static_cast<int>(i) * slot + (slot - bar_w) / 2;
        const int y = y_of_us(r.timing.us);
        const int h = k_top + k_plot_h - y;
        s += fmt::format(
            R"(<rect class="bar" data-name="{}" data-us="{:.3f}" x="{}" y="{}" width="{}" height="{}" fill="{}" shape-rendering="crispEdges"><title>{}: {:.1f} µs</title></rect>)"
            "\n",
            escape(r.name), r.timing.us, x, y, bar_w, h,
            r.quantum_safe ? k_pq_colour : k_classical_colour, escape(r.name), r.timing.us);
        s += fmt::format(
            R"(<text x="{}" y="{}" font-size="11" text-anchor="middle">{:.1f} µs</text>)"
            "\n",
            x + bar_w / 2, y - 10, r.timing.us);
        s += fmt::format(R"(<text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text>)"
                         "\n",
                         x + bar_w / 2, k_top + k_plot_h + 24, escape(r.label));
        const int px = x + bar_w / 2;
        const int py = y_of_bytes(static_cast<double>(r.bytes));
        points += fmt::format("{},{} ", px, py);
    }
    s += fmt::format(R"(<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>)"
                     "\n",
                     points, k_line_colour);
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto& r = rows[i];
        const int px = k_left + static_cast<int>(i) * slot + slot / 2;
        const int py = y_of_bytes(static_cast<double>(r.bytes));
        s += fmt::format(
            R"(<circle class="point" data-name="{}" data-bytes="{}" cx="{}" cy="{}" r="4" fill="{}"/>)"
            R"(<text x="{}" y="{}" font-size="11" fill="{}" stroke="#ffffff" stroke-width="3" paint-order="stroke">{} B</text>)"
            "\n",
            escape(r.name), r.bytes, px, py, k_line_colour, px + 7, py - 7, k_line_colour,
            bytes_text(r.bytes));
    }
    s += "</svg>\n";
    return s;
}

namespace {

std::string html_table(const Section& section) {
    std::string s = fmt::format("<h2>{}</h2>\n<p>Time: {}.", escape(section.title),
                                escape(section.time_meaning));
    if (!section.bytes_meaning.empty()) {
        s += fmt::format(" Bytes: {}.", escape(section.bytes_meaning));
    }
    s += "</p>\n<table>\n<tr><th>name</th><th>µs</th><th>range over rounds</th>"
         "<th>parts (µs)</th><th>bytes</th><th></th></tr>\n";
    for (const auto& r : section.rows) {
        std::string parts;
        for (const auto& p : r.parts) {
            parts += fmt::format("{}{} {:.1f}", parts.empty() ? "" : ", ", escape(p.operation),
                                 p.timing.us);
        }
        s += fmt::format(
            R"(<tr data-name="{}"><td>{}{}</td><td class="num">{:.1f}</td><td class="num">{:.1f}–{:.1f}</td><td>{}</td><td class="num">{}</td><td>{}</td></tr>)"
            "\n",
            escape(r.name), escape(r.name), r.quantum_safe ? "" : " <small>(classical)</small>",
            r.timing.us, r.timing.min_us, r.timing.max_us, parts,
            r.bytes > 0 ? bytes_text(r.bytes) : "", escape(r.note));
    }
    s += "</table>\n";
    return s;
}

}  // namespace

void describe_machine(Report& report) {
    report.openssl_version = OpenSSL_version(OPENSSL_VERSION);
    report.cores = std::thread::hardware_concurrency();
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line;
    while (std::getline(cpuinfo, line)) {
        if (line.starts_with("model name")) {
            const auto colon = line.find(':');
            if (colon != std::string::npos) {
                report.cpu = line.substr(line.find_first_not_of(' ', colon + 1));
            }
            break;
        }
    }
    const std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    std::array<char, 32> buf{};
    const std::size_t n = std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &utc);
    report.started.assign(buf.data(), n);
}

std::string to_json(const Report& report) {
    json::array sections;
    for (const auto& section : report.sections) {
        json::array rows;
        for (const auto& r : section.rows) {
            json::array parts;
            for (const auto& p : r.parts) {
                auto part = timing_json(p.timing);
                part.emplace("operation", p.operation);
                parts.push_back(std::move(part));
            }
            auto row = timing_json(r.timing);
            row.emplace("name", r.name);
            row.emplace("label", r.label);
            row.emplace("quantum_safe", r.quantum_safe);
            row.emplace("bytes", r.bytes);
            if (section.id == "handshakes") {
                row.emplace("bytes_client_to_server", r.bytes_out);
                row.emplace("bytes_server_to_client", r.bytes_in);
            }
            row.emplace("note", r.note);
            row.emplace("parts", std::move(parts));
            rows.push_back(std::move(row));
        }
        sections.push_back(json::object{{"id", section.id},
                                        {"title", section.title},
                                        {"time", section.time_meaning},
                                        {"bytes", section.bytes_meaning},
                                        {"rows", std::move(rows)}});
    }
    json::object out{
        {"pqmcp", report.pqmcp_version},
        {"openssl", report.openssl_version},
        {"cpu", report.cpu},
        {"cores", report.cores},
        {"started", report.started},
        {"quick", report.quick},
        {"budget",
         json::object{{"batch_ms", report.budget.batch.count()}, {"rounds", report.budget.rounds}}},
        {"sections", std::move(sections)},
    };
    return json::serialize(out) + "\n";
}

std::string to_table(const Report& report) {
    std::string s =
        fmt::format("pqmcp {} on {} ({} cores), {}; {} rounds of {} ms per figure\n",
                    report.pqmcp_version, report.cpu, report.cores, report.openssl_version,
                    report.budget.rounds, report.budget.batch.count());
    for (const auto& section : report.sections) {
        s += fmt::format("\n{} (time: {})\n", section.title, section.time_meaning);
        s += fmt::format("  {:<44} {:>10} {:>19} {:>9}  {}\n", "", "µs", "range", "bytes", "");
        for (const auto& r : section.rows) {
            s += fmt::format("  {:<44} {:>10.1f} {:>9.1f}–{:<9.1f} {:>9}  {}{}\n", r.name,
                             r.timing.us, r.timing.min_us, r.timing.max_us,
                             r.bytes > 0 ? bytes_text(r.bytes) : "", r.note,
                             r.quantum_safe ? "" : " (classical)");
        }
    }
    return s;
}

std::string to_html(const Report& report) {
    std::string s = R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>pqmcp bench</title>
<style>
body { font-family: sans-serif; margin: 16px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px 0; }
h2 { font-size: 16px; margin: 24px 0 4px 0; }
p.meta { font-size: 12px; color: #555; margin: 0 0 8px 0; }
svg.chart { display: block; margin: 0 0 8px 0; }
table { border-collapse: collapse; font-size: 12px; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
</style></head><body>
)";
    s += "<h1>pqmcp bench</h1>\n";
    s += fmt::format(
        R"(<p class="meta" id="meta">pqmcp {} · {} · {} ({} cores) · {} · {} rounds of {} ms per figure{}</p>)"
        "\n",
        escape(report.pqmcp_version), escape(report.openssl_version), escape(report.cpu),
        report.cores, escape(report.started), report.budget.rounds, report.budget.batch.count(),
        report.quick ? " (quick)" : "");
    for (const auto& section : report.sections) {
        if (!section.bytes_meaning.empty()) {
            s += chart_svg(section);
        }
    }
    for (const auto& section : report.sections) {
        s += html_table(section);
    }
    s += "</body></html>\n";
    return s;
}

}  // namespace pqmcp::measure
