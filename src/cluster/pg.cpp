#include "pg.hpp"

#include <array>

#include <fmt/format.h>

namespace pqmcp::cluster {

bool is_postgres(std::string_view spec) noexcept {
    return spec.starts_with("postgresql://") || spec.starts_with("postgres://");
}

namespace detail {

namespace {

std::string error_of(const PGconn* c) {
    std::string e = c != nullptr ? PQerrorMessage(c) : "out of memory";
    while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) {
        e.pop_back();
    }
    return e;
}

}  // namespace

Result<Pg> Pg::connect(const std::string& conninfo) {
    // dbname first, expanded (a URI or key=value string); what follows wins.
    const std::string timeout = std::to_string(k_connect_timeout_s);
    const std::array<const char*, 4> keys{"dbname", "connect_timeout", "application_name", nullptr};
    const std::array<const char*, 4> values{conninfo.c_str(), timeout.c_str(), "pqmcp", nullptr};
    PGconn* c = PQconnectdbParams(keys.data(), values.data(), 1);
    Pg pg(c, conninfo);
    if (c == nullptr) {
        return fail(Errc::unreachable, "postgresql: out of memory");
    }
    if (PQstatus(c) != CONNECTION_OK) {
        const std::string why = error_of(c);
        const bool bad = why.find("invalid") != std::string::npos ||
                         why.find("missing \"=\"") != std::string::npos;
        return fail(bad ? Errc::bad_address : Errc::unreachable,
                    fmt::format("postgresql: {}", why));
    }
    // NOTICEs ("relation ... already exists, skipping") are not for the log.
    PQsetNoticeProcessor(
        c, [](void* /*arg*/, const char* /*message*/) {}, nullptr);
    if (auto s = pg.setup(); !s) {
        return tl::unexpected(s.error());
    }
    return pg;
}

Status Pg::setup() {
    const std::string sql = fmt::format("SET statement_timeout = {}", k_statement_timeout_ms);
    PgResult r(PQexec(conn_.get(), sql.c_str()));
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
        return fail(Errc::failed, fmt::format("postgresql: {}", error_of(conn_.get())));
    }
    return {};
}

Result<PgResult> Pg::exec(std::string_view sql,
                          std::initializer_list<std::optional<std::string_view>> params) {
    const std::string statement(sql);
    std::vector<std::string> held;
    held.reserve(params.size());
    std::vector<const char*> values;
    for (const auto& p : params) {
        if (p) {
            held.emplace_back(*p);
            values.push_back(held.back().c_str());
        } else {
            values.push_back(nullptr);
        }
    }
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (PQstatus(conn_.get()) != CONNECTION_OK) {
            PQreset(conn_.get());
            if (PQstatus(conn_.get()) != CONNECTION_OK) {
                return fail(Errc::unreachable,
                            fmt::format("postgresql: {}", error_of(conn_.get())));
            }
            reconnected_ = true;
            if (auto s = setup(); !s) {
                return tl::unexpected(s.error());
            }
        }
        PgResult r(PQexecParams(conn_.get(), statement.c_str(), static_cast<int>(values.size()),
                                nullptr, values.data(), nullptr, nullptr, 0));
        const auto status = PQresultStatus(r.get());
        if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
            return r;
        }
        if (PQstatus(conn_.get()) != CONNECTION_OK && attempt == 0) {
            continue;  // the server went away under us: once more on a new connection
        }
        return fail(PQstatus(conn_.get()) == CONNECTION_OK ? Errc::failed : Errc::unreachable,
                    fmt::format("postgresql: {}", error_of(conn_.get())));
    }
    return fail(Errc::unreachable, "postgresql: the connection keeps failing");
}

std::vector<std::string> Pg::notifications() {
    std::vector<std::string> out;
    if (PQstatus(conn_.get()) != CONNECTION_OK || PQconsumeInput(conn_.get()) == 0) {
        return out;
    }
    while (PGnotify* n = PQnotifies(conn_.get())) {
        out.emplace_back(n->relname);
        PQfreemem(n);
    }
    return out;
}

bool Pg::reconnected() {
    const bool r = reconnected_;
    reconnected_ = false;
    return r;
}

std::string Pg::describe() const {
    const char* host = PQhost(conn_.get());
    const char* port = PQport(conn_.get());
    const char* db = PQdb(conn_.get());
    return fmt::format("postgresql host={} port={} dbname={}", host != nullptr ? host : "",
                       port != nullptr ? port : "", db != nullptr ? db : "");
}

Status exec_all(Pg& pg, std::string_view sql) {
    while (!sql.empty()) {
        const auto end = sql.find(";\n");
        const std::string_view one = sql.substr(0, end);
        if (one.find_first_not_of(" \n") != std::string_view::npos) {
            if (auto r = pg.exec(one); !r) {
                return tl::unexpected(r.error());
            }
        }
        if (end == std::string_view::npos) {
            break;
        }
        sql.remove_prefix(end + 2);
    }
    return {};
}

}  // namespace detail

}  // namespace pqmcp::cluster
