// What the gateway runs beside its sessions: the policy (read, reloaded when
// its file changes), the audit writer, dashboard, recorder and metrics
// listener, the sandbox supervisor, and the sweep of "started" audit records.
#include "gateway_impl.hpp"

namespace pqmcp::gateway {

namespace {

std::optional<std::pair<std::filesystem::file_time_type, std::uintmax_t>> stamp_of(
    const std::filesystem::path& file) {
    std::error_code ec;
    const auto time = std::filesystem::last_write_time(file, ec);
    if (ec) {
        return std::nullopt;
    }
    const auto size = std::filesystem::file_size(file, ec);
    if (ec) {
        return std::nullopt;
    }
    return std::pair{time, size};
}

Result<std::shared_ptr<const policy::Policy>> read_policy(const GatewayConfig& c, bool initial) {
    if (!c.policy_file.empty()) {
        return policy::load_policy(c.policy_file);
    }
    if (c.policy_inline.empty()) {
        return std::shared_ptr<const policy::Policy>{};
    }
    if (initial || c.config_file.empty()) {
        return policy::parse_policy(c.policy_inline, c.config_file.empty()
                                                         ? "policy"
                                                         : c.config_file.string() + " policy:");
    }
    // An inline policy is read again from the configuration file.
    auto again = load_config(c.config_file);
    if (!again) {
        return fail(policy::Errc::invalid_policy, again.error().detail);
    }
    if (again->policy_inline.empty()) {
        return fail(policy::Errc::invalid_policy,
                    c.config_file.string() + ": its policy: section is gone");
    }
    return policy::parse_policy(again->policy_inline, c.config_file.string() + " policy:");
}

std::string describe_policy(const policy::Policy& p) {
    return p.source + " (" + p.fingerprint + ", " + std::to_string(p.rules.size()) +
           " rules, default " + std::string(policy::to_string(p.default_effect)) + ")";
}

}  // namespace

Status Gateway::Impl::apply_policy(bool initial) {
    auto loaded = read_policy(config, initial);
    if (!loaded) {
        if (!initial) {
            const auto kept = shared.policy();
            spdlog::error("policy not reloaded: {}; keeping {}", loaded.error().detail,
                          kept ? describe_policy(*kept) : std::string("no policy"));
            if (recorder) {
                recorder->policy("reload_failed", kept ? kept->source : "",
                                 kept ? kept->fingerprint : "", loaded.error().detail);
            }
        }
        return tl::unexpected(loaded.error());
    }
    if (!config.policy_file.empty()) {
        policy_stamp = stamp_of(config.policy_file);
    }
    const std::shared_ptr<const policy::Policy> now = std::move(*loaded);
    if (now) {
        // The baselines' settings first: a session that sees the new policy
        // observes with them.
        shared.behaviour.configure(now->behaviour);
    }
    shared.set_policy(now);
    if (now) {
        info.policy = describe_policy(*now);
        if (!initial) {
            spdlog::info("policy reloaded: {}", info.policy);
        }
        if (recorder) {
            recorder->policy(initial ? "loaded" : "reloaded", now->source, now->fingerprint, {});
        }
    }
    return {};
}

// Every second: has the policy file changed? Also forgets idle rate state.
void Gateway::Impl::watch_policy() {
    policy_watch.expires_after(std::chrono::seconds{1});
    policy_watch.async_wait([this](const boost::system::error_code& ec) {
        if (ec || stopping) {
            return;
        }
        if (!config.policy_file.empty()) {
            const auto now = stamp_of(config.policy_file);
            if (now && now != policy_stamp) {
                policy_stamp = now;  // an invalid file is reported once per change
                (void)apply_policy(false);
            }
        }
        shared.limiter.sweep(shared.clock());
        watch_policy();
    });
}

// Every half flush interval, each request in flight for longer than that gets
// a "started" record: a kill -9 then loses at most the requests accepted in
// the last 1.5 flush intervals (plus one commit), answered or not.
void Gateway::Impl::sweep_started() {
    if (!audit) {
        return;
    }
    const auto half = std::max(config.audit.flush_interval / 2, std::chrono::milliseconds{5});
    audit_sweep.expires_after(half);
    audit_sweep.async_wait([this, half](const boost::system::error_code& ec) {
        if (ec || stopping) {
            return;
        }
        const auto older_than = std::chrono::steady_clock::now() - half;
        // Each thread looks at its own sessions.
        for (const auto& shard : shards) {
            asio::post(shard->services.io, [s = shard.get(), older_than] {
                for (GatewaySession* session : s->sessions) {
                    session->note_started(older_than);
                }
            });
        }
        sweep_started();
    });
}

Result<std::string> read_secret_line(const std::filesystem::path& file, const std::string& what) {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) {
        return fail(Errc::invalid_config, what + " " + file.string() + ": " + std::strerror(errno));
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        return fail(Errc::invalid_config,
                    what + " " + file.string() + ": readable by others (chmod 600 it)");
    }
    std::ifstream in(file);
    std::string line;
    if (!in || !std::getline(in, line)) {
        return fail(Errc::invalid_config, what + " " + file.string() + ": cannot be read");
    }
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
        line.pop_back();
    }
    if (line.empty()) {
        return fail(Errc::invalid_config, what + " " + file.string() + ": its first line is empty");
    }
    return line;
}

namespace {

// The dashboard's token from its file.
Result<std::string> read_token_file(const std::filesystem::path& file) {
    auto line = read_secret_line(file, "dashboard.token_file");
    if (!line) {
        return line;
    }
    if (auto ok = check_dashboard_token(*line); !ok) {
        return fail(Errc::invalid_config,
                    "dashboard.token_file " + file.string() + ": " + ok.error().detail);
    }
    return line;
}

}  // namespace

Status Gateway::Impl::start_observing() {
    const GatewayConfig& c = config;
    if (c.audit.enabled) {
        audit::WriterOptions o;
        o.path = c.audit_path();
        std::error_code ec;
        std::filesystem::create_directories(o.path.parent_path(), ec);
        o.queue_capacity = c.audit.queue;
        o.flush_interval = c.audit.flush_interval;
        o.checkpoint_records = c.audit.checkpoint_records;
        o.checkpoint_interval = c.audit.checkpoint_interval;
        o.sync_full = c.audit.sync_full;
        auto writer = audit::Writer::open(o, *own);
        if (!writer) {
            return fail(Errc::startup_failed,
                        "audit " + o.path.string() + ": " + writer.error().detail);
        }
        audit = std::move(*writer);
        info.audit = o.path.string();
        spdlog::info("audit trail: {} (checkpoint every {} records or {} ms, crash window {} ms)",
                     info.audit, o.checkpoint_records, o.checkpoint_interval.count(),
                     o.flush_interval.count());
    }
    const auto access = observe::parse_dashboard_access(c.observe.dashboard);
    if (access && *access != observe::DashboardAccess::off) {
        observe::DashboardOptions o;
        o.access = *access;
        o.token = c.observe.dashboard_token;
        if (o.token.empty() && !c.observe.dashboard_token_file.empty()) {
            auto token = read_token_file(c.observe.dashboard_token_file);
            if (!token) {
                return tl::unexpected(token.error());
            }
            o.token = std::move(*token);
        }
        if (o.token.empty()) {
            // NOLINTNEXTLINE(concurrency-mt-unsafe): read at start, before any thread
            if (const char* from_env = std::getenv("PQMCP_DASHBOARD_TOKEN");
                from_env != nullptr && *from_env != '\0') {
                o.token = from_env;
                if (auto ok = check_dashboard_token(o.token); !ok) {
                    return fail(Errc::invalid_config,
                                "PQMCP_DASHBOARD_TOKEN: " + ok.error().detail);
                }
            }
        }
        if (o.access == observe::DashboardAccess::token && o.token.empty()) {
            auto random = crypto::random_bytes(16);
            if (!random) {
                return fail(Errc::startup_failed, "dashboard token: " + random.error().detail);
            }
            o.token = to_hex(*random);
        }
        dashboard = std::make_unique<observe::Dashboard>(std::move(o));
    }
    Recorder::Gauges gauges;
    gauges.sessions = [this] {
        return server ? static_cast<double>(server->stats().sessions) : 0.0;
    };
    gauges.connections = [this] {
        return server ? static_cast<double>(server->stats().connections) : 0.0;
    };
    gauges.children = [this] { return static_cast<double>(children.running()); };
    gauges.evicted = [this] { return server ? static_cast<double>(server->stats().evicted) : 0.0; };
    gauges.refused = [this] { return server ? static_cast<double>(server->stats().refused) : 0.0; };
    gauges.moved = [this] {
        return server ? static_cast<double>(server->stats().connections_moved) : 0.0;
    };
    gauges.overload = [this] { return server ? server->stats().overload : 1.0; };
    gauges.buffered = [this] {
        return server ? static_cast<double>(server->stats().buffered_bytes) : 0.0;
    };
    recorder = std::make_unique<Recorder>(c, audit.get(), dashboard.get(), std::move(gauges));
    shared.recorder = recorder.get();
    return {};
}

Status Gateway::Impl::start_cluster() {
    const ClusterConfig& k = config.cluster;
    observe::Registry& registry = recorder->metrics();
    if (!k.redis.empty()) {
        cluster::RedisOptions o;
        o.url = k.redis;
        o.timeout = k.redis_timeout;
        auto store = cluster::redis_counts(o);  // checks the address; the threads' clients count
        if (!store) {
            return fail(Errc::invalid_config, "cluster.redis: " + store.error().detail);
        }
        const auto fallback =
            k.fail == "local" ? policy::Fallback::local : policy::Fallback::closed;
        spdlog::info(
            "rates and quotas: counted in {} (replica {}; a decision waits at most {} ms "
            "there, then {})",
            (*store)->describe(), config.replica_name(), k.redis_timeout.count(),
            fallback == policy::Fallback::closed ? "refuses (fail: closed)"
                                                 : "counts here alone (fail: local)");
        shared.limiter.share(nullptr, fallback);
        registry.counter_fn("pqmcp_shared_state_fallbacks_total",
                            "Rate and quota decisions Redis did not answer in time (each took "
                            "the fallback, cluster.fail)",
                            [this] { return static_cast<double>(shared.limiter.fallbacks()); });
        if (k.behaviour == "shared") {
            spdlog::info(
                "behaviour baselines: shared in {} (without an answer in time, a call is scored "
                "against this replica's own)",
                (*store)->describe());
            registry.counter_fn(
                "pqmcp_shared_baseline_fallbacks_total",
                "tools/call scored against this replica's own behaviour baseline because Redis "
                "did not answer in time",
                [this] { return static_cast<double>(shared.behaviour.fallbacks()); });
        }
    }
    if (!k.postgres.empty() && audit) {
        cluster::ShipperOptions o;
        o.conninfo = k.postgres;
        o.local = info.audit;
        o.replica = config.replica_name();
        auto shipper_started = cluster::Shipper::start(std::move(o));
        if (!shipper_started) {
            return fail(Errc::invalid_config,
                        "cluster.postgres: " + shipper_started.error().detail);
        }
        shipper = std::move(*shipper_started);
        spdlog::info("audit trail: shipped to PostgreSQL as replica {}", config.replica_name());
        registry.gauge("pqmcp_audit_shipped_seq",
                       "The last audit record of this replica PostgreSQL has",
                       [this] { return static_cast<double>(shipper->stats().shipped_seq); });
        registry.counter_fn("pqmcp_audit_ship_failures_total",
                            "Rounds of audit shipping to PostgreSQL that failed (retried)",
                            [this] { return static_cast<double>(shipper->stats().failures); });
    }
    return {};
}

void Gateway::Impl::close_audit() {
    if (!audit) {
        return;
    }
    audit->close();
    if (shipper) {
        shipper->stop();  // one last round: the closing records too
    }
}

Status Gateway::Impl::start_sandbox() {
    const GatewayConfig& c = config;
    std::vector<const UpstreamConfig*> boxed;
    for (const auto& u : c.upstreams) {
        if (u.kind == UpstreamKind::stdio) {
            if (u.sandbox.enabled) {
                boxed.push_back(&u);
            } else {
                spdlog::warn(
                    "upstream {} runs without a sandbox (sandbox: off): it can read and write "
                    "whatever this user can, the gateway's identity and databases included",
                    u.name);
            }
        }
    }
    if (boxed.empty()) {
        return {};
    }
    const auto& support = sandbox::probe();
    // Each sandbox is checked now, with the grants it will get: a kernel that
    // lacks a facility, or a grant that reaches the gateway's own files,
    // stops the start, not the first session.
    for (const UpstreamConfig* u : boxed) {
        const auto env = child_environment(*u, {}, {});
        std::string search_path;
        for (const auto& [key, value] : env) {
            if (key == "PATH") {
                search_path = value;
            }
        }
        auto exe = transport::find_executable(u->command, search_path);
        if (!exe) {
            return fail(Errc::startup_failed, "upstream " + u->name + ": " + exe.error().detail);
        }
        const auto policy = child_policy(c, *u, *exe, {});
        auto prepared = sandbox::prepare(policy, support);
        if (!prepared) {
            return fail(Errc::startup_failed,
                        "upstream " + u->name + ": sandbox: " + prepared.error().detail +
                            (prepared.error().code == sandbox::Errc::unsupported
                                 ? " (this kernel: " + sandbox::describe(support) +
                                       "); to run it without one, say sandbox: off for it "
                                       "(--sandbox " +
                                       u->name + "=off)"
                                 : std::string{}));
        }
        spdlog::info("upstream {}: sandboxed (read {} paths, write {}, network {}{})", u->name,
                     policy.read.size(), policy.write.size() + 1,
                     sandbox::to_string(policy.network),
                     policy.user.empty() ? "" : ", user " + policy.user);
    }
    spdlog::info("sandbox: {}", sandbox::describe(support));
    if (support.landlock_abi < 6) {
        spdlog::warn(
            "sandbox: Landlock ABI {} cannot scope signals: a sandboxed server can signal other "
            "processes of its user (never the gateway: seccomp refuses that)",
            support.landlock_abi);
    }
    // The children's private temporary directories, under one of the gateway's own.
    std::error_code ec;
    std::string pattern =
        (std::filesystem::temp_directory_path(ec) / "pqmcp-children-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        return fail(Errc::startup_failed, "sandbox: cannot create a temporary directory: " +
                                              std::string(std::strerror(errno)));
    }
    tmp_root = pattern;
    services.tmp_root = tmp_root;
    supervisor = std::make_unique<sandbox::Supervisor>([this](sandbox::Violation v) {
        // From the supervisor's thread to the gateway's.
        asio::post(io, [this, v = std::move(v)] {
            if (recorder) {
                recorder->sandbox(v);
            }
        });
    });
    services.supervisor = supervisor.get();
    return {};
}

}  // namespace pqmcp::gateway
