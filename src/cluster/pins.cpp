// Pins and approvals in PostgreSQL, shared by every replica. See cluster.hpp.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "pg.hpp"
#include "pqmcp/integrity/errors.hpp"

namespace pqmcp::cluster {

namespace {

using detail::Pg;
using detail::text;

constexpr std::string_view k_channel = "pqmcp_pins";

constexpr std::string_view k_schema = R"sql(
CREATE TABLE IF NOT EXISTS pqmcp_pins(
  upstream TEXT NOT NULL,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  digest TEXT NOT NULL,
  definition TEXT NOT NULL,
  first_seen TEXT NOT NULL,
  approved TEXT NOT NULL DEFAULT '',
  pending_digest TEXT NOT NULL DEFAULT '',
  pending_definition TEXT NOT NULL DEFAULT '',
  pending_seen TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(upstream, kind, name));
LISTEN pqmcp_pins)sql";

// As the store sees it: one integrity error kind for anything PostgreSQL does.
tl::unexpected<Error> store_error(const Error& e) {
    return fail(integrity::Errc::store_failed, e.message());
}

class PostgresPins final : public integrity::PinBackend {
  public:
    explicit PostgresPins(Pg pg) : pg_(std::move(pg)) {}

    // A notification on the channel, or a new connection (which may have
    // missed one), makes the store forget its cache.
    Result<bool> changed() override {
        bool moved = first_;
        first_ = false;
        for (const auto& channel : pg_.notifications()) {
            moved = moved || channel == k_channel;
        }
        if (pg_.reconnected()) {
            // LISTEN is per connection: listen again on the new one.
            if (auto r = pg_.exec("LISTEN pqmcp_pins"); !r) {
                return store_error(r.error());
            }
            moved = true;
        }
        return moved;
    }

    Result<std::optional<integrity::PinRow>> find(const integrity::PinKey& key) override {
        auto r = pg_.exec(
            "SELECT digest, definition, first_seen, pending_digest FROM pqmcp_pins "
            "WHERE upstream=$1 AND kind=$2 AND name=$3",
            {key.upstream, key.kind, key.name});
        if (!r) {
            return store_error(r.error());
        }
        const PGresult* res = r->get();
        if (PQntuples(res) == 0) {
            return std::optional<integrity::PinRow>{};
        }
        return std::optional<integrity::PinRow>(
            integrity::PinRow{std::string(text(res, 0, 0)), std::string(text(res, 0, 1)),
                              std::string(text(res, 0, 2)), std::string(text(res, 0, 3))});
    }

    Result<bool> insert(const integrity::PinKey& key, std::string_view digest,
                        std::string_view definition, std::string_view first_seen) override {
        auto r = pg_.exec(
            "INSERT INTO pqmcp_pins(upstream, kind, name, digest, definition, first_seen) "
            "VALUES($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            {key.upstream, key.kind, key.name, digest, definition, first_seen});
        if (!r) {
            return store_error(r.error());
        }
        return std::string_view(PQcmdTuples(r->get())) == "1";
    }

    Status set_pending(const integrity::PinKey& key, std::string_view digest,
                       std::string_view definition, std::string_view seen) override {
        auto r = pg_.exec(
            "UPDATE pqmcp_pins SET pending_digest=$4, pending_definition=$5, pending_seen=$6 "
            "WHERE upstream=$1 AND kind=$2 AND name=$3",
            {key.upstream, key.kind, key.name, digest, definition, seen});
        if (!r) {
            return store_error(r.error());
        }
        return {};
    }

    // The update and its notification in one transaction: every replica
    // hears of it once it is committed.
    Result<std::size_t> approve(std::string_view upstream, std::optional<std::string_view> name,
                                std::string_view when) override {
        if (auto r = pg_.exec("BEGIN"); !r) {
            return store_error(r.error());
        }
        auto r = pg_.exec(
            "UPDATE pqmcp_pins SET digest=pending_digest, definition=pending_definition, "
            "approved=$3, pending_digest='', pending_definition='', pending_seen='' "
            "WHERE upstream=$1 AND pending_digest<>'' AND ($2::text IS NULL OR name=$2)",
            {upstream, name, when});
        if (!r) {
            (void)pg_.exec("ROLLBACK");
            return store_error(r.error());
        }
        const std::size_t n = std::stoul(PQcmdTuples(r->get()));
        if (auto notify = pg_.exec("SELECT pg_notify($1, $2)", {k_channel, upstream}); !notify) {
            (void)pg_.exec("ROLLBACK");
            return store_error(notify.error());
        }
        if (auto c = pg_.exec("COMMIT"); !c) {
            return store_error(c.error());
        }
        return n;
    }

    Result<std::vector<integrity::PinRecord>> list(
        std::optional<std::string_view> upstream) override {
        auto r = pg_.exec(
            "SELECT upstream, kind, name, digest, first_seen, approved, pending_digest, "
            "pending_seen FROM pqmcp_pins WHERE ($1::text IS NULL OR upstream=$1) "
            "ORDER BY upstream, kind, name",
            {upstream});
        if (!r) {
            return store_error(r.error());
        }
        std::vector<integrity::PinRecord> out;
        const PGresult* res = r->get();
        for (int i = 0; i < PQntuples(res); ++i) {
            const auto col = [&](int c) { return std::string(text(res, i, c)); };
            out.push_back(integrity::PinRecord{integrity::PinKey{col(0), col(1), col(2)}, col(3),
                                               col(4), col(5), col(6), col(7)});
        }
        return out;
    }

    [[nodiscard]] std::string describe() const override { return pg_.describe(); }

  private:
    Pg pg_;
    bool first_ = true;
};

}  // namespace

Result<integrity::PinStore> postgres_pins(const std::string& conninfo) {
    auto pg = Pg::connect(conninfo);
    if (!pg) {
        return tl::unexpected(pg.error());
    }
    // Two replicas starting at once may race on CREATE TABLE IF NOT EXISTS
    // (a unique violation in the catalog): the second try sees the table.
    auto made = detail::exec_all(*pg, k_schema);
    if (!made) {
        made = detail::exec_all(*pg, k_schema);
    }
    if (!made) {
        return tl::unexpected(made.error());
    }
    return integrity::PinStore(std::make_unique<PostgresPins>(std::move(*pg)));
}

Result<integrity::PinStore> open_pins(const std::string& spec) {
    if (is_postgres(spec)) {
        return postgres_pins(spec);
    }
    return integrity::PinStore::open(spec);
}

}  // namespace pqmcp::cluster
