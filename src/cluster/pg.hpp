// Internal: one libpq connection, its results, its notifications.
#pragma once

#include <libpq-fe.h>

#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pqmcp/cluster/cluster.hpp"

namespace pqmcp::cluster::detail {

struct ResultDeleter {
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

// Seconds libpq waits for a connection, and the statement_timeout of every
// statement (milliseconds).
inline constexpr int k_connect_timeout_s = 5;
inline constexpr int k_statement_timeout_ms = 5'000;

class Pg final {
  public:
    // Connects (connect_timeout 5 s, application_name pqmcp) and sets the
    // statement_timeout. Errors: bad_address, unreachable.
    [[nodiscard]] static Result<Pg> connect(const std::string& conninfo);

    // A statement with text parameters (nullopt: NULL). Reconnects once when
    // the connection was lost. Errors: unreachable, failed.
    [[nodiscard]] Result<PgResult> exec(
        std::string_view sql, std::initializer_list<std::optional<std::string_view>> params = {});
    // The channels of notifications that arrived (never blocks).
    [[nodiscard]] std::vector<std::string> notifications();
    // Reconnected since the last call (notifications may have been missed).
    [[nodiscard]] bool reconnected();
    // "host=... dbname=..." for logs (never the password).
    [[nodiscard]] std::string describe() const;

    Pg(Pg&&) noexcept = default;
    Pg& operator=(Pg&&) noexcept = default;
    Pg(const Pg&) = delete;
    Pg& operator=(const Pg&) = delete;
    ~Pg() = default;

  private:
    struct ConnDeleter {
        void operator()(PGconn* c) const noexcept { PQfinish(c); }
    };
    explicit Pg(PGconn* c, std::string conninfo) : conn_(c), conninfo_(std::move(conninfo)) {}
    Status setup();
    std::unique_ptr<PGconn, ConnDeleter> conn_;
    std::string conninfo_;
    bool reconnected_ = false;
};

// Each statement of `sql` (separated by ";\n") in turn.
[[nodiscard]] Status exec_all(Pg& pg, std::string_view sql);

[[nodiscard]] inline std::string_view text(const PGresult* r, int row, int col) {
    return {PQgetvalue(r, row, col), static_cast<std::size_t>(PQgetlength(r, row, col))};
}

}  // namespace pqmcp::cluster::detail
