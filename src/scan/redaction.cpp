// Secrets in commands, URLs, headers and environments, masked for reports.
#include "pqmcp/scan/discovery.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>
#include <string>
#include <vector>

#include "text.hpp"

namespace pqmcp::scan {

namespace {

bool secret_name(std::string_view name) {
    const std::string n = lower(name);
    return contains_any(
        n, {"key", "token", "secret", "passw", "credential", "auth", "bearer", "cookie", "sig"});
}

// Well-known shapes of API keys and tokens.
bool looks_like_token(std::string_view value) {
    if (value.size() < 16) {
        return false;
    }
    for (const std::string_view prefix :
         {"sk-", "sk_live_", "sk_test_", "rk_live_", "ghp_", "gho_", "ghu_", "ghs_", "github_pat_",
          "glpat-", "xoxb-", "xoxp-", "xapp-", "AKIA", "ASIA", "AIza", "eyJ", "npm_", "hf_"}) {
        if (value.starts_with(prefix)) {
            return true;
        }
    }
    return false;
}

bool only_variable(std::string_view value) {
    return value.starts_with("${") && value.ends_with('}') && value.find('}') == value.size() - 1;
}

std::string mask(std::string_view value) {
    return only_variable(value) ? std::string(value) : std::string("***");
}

}  // namespace

std::string redact_url(std::string_view url) {
    std::string out;
    std::string_view rest = url;
    if (const auto scheme = rest.find("://"); scheme != std::string_view::npos) {
        out.append(rest.substr(0, scheme + 3));
        rest = rest.substr(scheme + 3);
        const auto authority_end = rest.find_first_of("/?#");
        const auto at = rest.substr(0, authority_end).rfind('@');
        if (at != std::string_view::npos) {
            out += "***@";
            rest = rest.substr(at + 1);
        }
    }
    const auto query = rest.find('?');
    if (query == std::string_view::npos) {
        out.append(rest);
        return out;
    }
    out.append(rest.substr(0, query + 1));
    rest = rest.substr(query + 1);
    std::string_view fragment;
    if (const auto hash = rest.find('#'); hash != std::string_view::npos) {
        fragment = rest.substr(hash);
        rest = rest.substr(0, hash);
    }
    bool first = true;
    while (true) {
        const auto amp = rest.find('&');
        const std::string_view param = rest.substr(0, amp);
        if (!first) {
            out += '&';
        }
        first = false;
        const auto eq = param.find('=');
        if (eq != std::string_view::npos && secret_name(param.substr(0, eq))) {
            out.append(param.substr(0, eq + 1));
            out += mask(param.substr(eq + 1));
        } else {
            out.append(param);
        }
        if (amp == std::string_view::npos) {
            break;
        }
        rest = rest.substr(amp + 1);
    }
    out.append(fragment);
    return out;
}

namespace {

// "Authorization: Bearer ...", "X-Api-Key: ...": the value masked.
std::optional<std::string> redact_header(std::string_view header) {
    const auto colon = header.find(':');
    if (colon == std::string_view::npos || colon == 0) {
        return std::nullopt;
    }
    const std::string_view name = header.substr(0, colon);
    if (name.find(' ') != std::string_view::npos || !secret_name(name)) {
        return std::nullopt;
    }
    std::string_view value = header.substr(colon + 1);
    while (value.starts_with(' ')) {
        value.remove_prefix(1);
    }
    return std::string(name) + ": " + mask(value);
}

// "API_KEY=..." (docker -e, env, ...): the value masked.
std::optional<std::string> redact_assignment(std::string_view arg) {
    const auto eq = arg.find('=');
    if (eq == std::string_view::npos || eq == 0) {
        return std::nullopt;
    }
    const std::string_view name = arg.substr(0, eq);
    if (name.find(' ') != std::string_view::npos || !secret_name(name)) {
        return std::nullopt;
    }
    return std::string(name) + "=" + mask(arg.substr(eq + 1));
}

std::string redact_value(std::string_view arg) {
    if (arg.starts_with("http://") || arg.starts_with("https://")) {
        return redact_url(arg);
    }
    if (auto header = redact_header(arg)) {
        return *header;
    }
    if (auto assignment = redact_assignment(arg)) {
        return *assignment;
    }
    return looks_like_token(arg) ? std::string("***") : std::string(arg);
}

}  // namespace

std::vector<std::string> redact_args(const std::vector<std::string>& args) {
    std::vector<std::string> out;
    out.reserve(args.size());
    bool value_is_secret = false;
    for (const auto& a : args) {
        const std::string_view arg(a);
        if (value_is_secret && !arg.starts_with('-')) {
            out.push_back(mask(arg));
            value_is_secret = false;
            continue;
        }
        value_is_secret = false;
        if (arg.starts_with('-')) {
            const auto eq = arg.find('=');
            const std::string_view flag = arg.substr(0, eq);
            if (secret_name(flag)) {
                if (eq == std::string_view::npos) {
                    value_is_secret = true;  // --api-key VALUE
                    out.emplace_back(arg);
                } else {
                    out.push_back(std::string(flag) + "=" + mask(arg.substr(eq + 1)));
                }
                continue;
            }
            if (eq != std::string_view::npos) {
                out.push_back(std::string(flag) + "=" + redact_value(arg.substr(eq + 1)));
                continue;
            }
            out.emplace_back(arg);
            continue;
        }
        out.push_back(redact_value(arg));
    }
    return out;
}

}  // namespace pqmcp::scan
