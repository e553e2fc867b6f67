// The sandbox of stdio upstreams (src/sandbox), end to end through
// transport::ChildProcess: the fixture's probes (tests/fixtures/probe.hpp) try
// what a hostile server would, and each test asserts what the kernel answered
// and what the supervisor reported.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "../common/temp_dir.hpp"
#include "pqmcp/sandbox/sandbox.hpp"
#include "pqmcp/transport/child.hpp"
#include "test_paths.hpp"

namespace {

namespace fs = std::filesystem;
namespace sb = pqmcp::sandbox;
using pqmcp::test::TempDir;

const fs::path k_fixture = pqmcp::test_paths::fixture_bin();

struct Outcome {
    std::string out;  // the probe's stdout
    std::vector<sb::Violation> violations;
    std::string spawn_error;
};

// What every probe needs to start: the system, the fixture and its OpenSSL.
sb::Policy base_policy() {
    sb::Policy p;
    for (const char* dir : {"/usr", "/lib", "/lib64", "/bin", "/etc/ld.so.cache"}) {
        if (fs::exists(dir)) {
            p.read.emplace_back(dir);
        }
    }
    p.read.push_back(fs::canonical(k_fixture).parent_path());
    p.read.push_back(fs::canonical(fs::path(PQMCP_OPENSSL_BIN)).parent_path().parent_path() /
                     "lib");
    p.write.emplace_back("/dev/null");
    p.guard_pid = ::getpid();
    return p;
}

// Runs `pqmcp_fixture --probe what arg`, sandboxed by `policy` (none: unsandboxed).
Outcome run(const sb::Policy* policy, const std::string& what, const std::string& arg = {},
            pqmcp::transport::Environment env = pqmcp::transport::minimal_environment()) {
    Outcome result;
    std::mutex mutex;
    sb::Supervisor supervisor([&](sb::Violation v) {
        const std::lock_guard lock(mutex);
        result.violations.push_back(std::move(v));
    });
    std::optional<sb::Prepared> prepared;
    if (policy != nullptr) {
        auto p = sb::prepare(*policy);
        if (!p) {
            result.spawn_error = p.error().message();
            return result;
        }
        prepared = std::move(*p);
    }
    boost::asio::io_context io;
    pqmcp::transport::ChildSpec spec;
    spec.command = k_fixture.string();
    spec.args = {"--probe", what};
    if (!arg.empty()) {
        spec.args.push_back(arg);
    }
    spec.env = std::move(env);
    spec.label = "probe";
    if (prepared) {
        spec.sandbox = &*prepared;
        spec.supervisor = &supervisor;
    }
    bool exited = false;
    pqmcp::transport::ChildCallbacks callbacks;
    callbacks.on_line = [&](const std::string& line) {
        result.out += (result.out.empty() ? "" : "\n") + line;
    };
    callbacks.on_exit = [&](const std::string&) { exited = true; };
    auto child = pqmcp::transport::ChildProcess::spawn(io.get_executor(), spec, callbacks);
    if (!child) {
        result.spawn_error = child.error().message();
        return result;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{20};
    while (!exited && std::chrono::steady_clock::now() < deadline) {
        io.run_for(std::chrono::milliseconds{20});
    }
    // Reports come from the supervisor's thread; give the last one a moment.
    for (int i = 0; i < 50 && supervisor.watching() > 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    const std::lock_guard lock(mutex);
    return result;
}

bool reported(const Outcome& o, std::string_view access, std::string_view what, bool guarded) {
    for (const auto& v : o.violations) {
        if (v.access == access && v.what == what && v.protected_path == guarded &&
            v.label == "probe") {
            return true;
        }
    }
    return false;
}

class Sandbox : public ::testing::Test {
  protected:
    void SetUp() override {
        const auto& s = sb::probe();
        if (s.landlock_abi < 1 || !s.seccomp_filter) {
            GTEST_SKIP() << "this kernel has no sandbox: " << sb::describe(s);
        }
        secret_ = dir_.path() / "gateway" / "identity.key";
        fs::create_directories(secret_.parent_path());
        std::ofstream(secret_) << "PRIVATE KEY\n";
        policy_ = base_policy();
        policy_.protect.push_back(secret_.parent_path());
        work_ = dir_.path() / "work";
        fs::create_directories(work_);
    }
    TempDir dir_;
    fs::path secret_;
    fs::path work_;
    sb::Policy policy_;
};

// A TCP listener of the test's own, on 127.0.0.1.
class Listener final {
  public:
    Listener() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        auto* sa = reinterpret_cast<sockaddr*>(&addr);  // NOLINT: the sockets API
        (void)::bind(fd_, sa, sizeof addr);
        (void)::listen(fd_, 8);
        (void)::getsockname(fd_, sa, &len);
        port_ = ntohs(addr.sin_port);
    }
    ~Listener() { ::close(fd_); }
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;
    Listener(Listener&&) = delete;
    Listener& operator=(Listener&&) = delete;
    [[nodiscard]] std::string where() const { return "127.0.0.1:" + std::to_string(port_); }

  private:
    int fd_;
    std::uint16_t port_ = 0;
};

TEST(ChildProcess, GetsOnlyItsStandardDescriptorsAndTheGivenEnvironment) {
    // A descriptor without close-on-exec, as a careless library would leave it.
    const int leaked = ::open("/dev/null", O_RDONLY);
    ASSERT_GE(leaked, 3);
    const Listener listener;  // a socket too
    ::setenv("PQMCP_TEST_SECRET", "hunter2", 1);
    const auto fds = run(nullptr, "fds");
    EXPECT_EQ(fds.out, "0 1 2") << fds.spawn_error;
    const auto env = run(nullptr, "env", {}, {{"PATH", "/usr/bin:/bin"}, {"ONLY", "this"}});
    EXPECT_EQ(env.out, "PATH=/usr/bin:/bin\nONLY=this");
    const auto minimal = run(nullptr, "env");
    EXPECT_EQ(minimal.out.find("PQMCP_TEST_SECRET"), std::string::npos) << minimal.out;
    EXPECT_NE(minimal.out.find("PATH="), std::string::npos);
    ::unsetenv("PQMCP_TEST_SECRET");
    ::close(leaked);
}

TEST(ChildProcess, PassesOnlyTheNamedVariables) {
    ::setenv("PQMCP_TEST_PASSED", "yes", 1);
    ::setenv("PQMCP_TEST_KEPT", "no", 1);
    const auto env =
        pqmcp::transport::minimal_environment({"PQMCP_TEST_PASSED", "NOT_SET_ANYWHERE"});
    std::vector<std::string> names;
    for (const auto& [k, v] : env) {
        names.push_back(k);
    }
    EXPECT_NE(std::find(names.begin(), names.end(), "PQMCP_TEST_PASSED"), names.end());
    EXPECT_EQ(std::find(names.begin(), names.end(), "PQMCP_TEST_KEPT"), names.end());
    EXPECT_EQ(std::find(names.begin(), names.end(), "NOT_SET_ANYWHERE"), names.end());
    ::unsetenv("PQMCP_TEST_PASSED");
    ::unsetenv("PQMCP_TEST_KEPT");
}

TEST(ChildProcess, ExecFailureIsReportedAtSpawn) {
    boost::asio::io_context io;
    pqmcp::transport::ChildSpec spec;
    spec.command = "/nonexistent/server";
    auto child = pqmcp::transport::ChildProcess::spawn(io.get_executor(), spec, {});
    ASSERT_FALSE(child);
    EXPECT_NE(child.error().detail.find("execve: No such file or directory"), std::string::npos)
        << child.error().detail;
    spec.command = "no-such-server-anywhere";
    auto missing = pqmcp::transport::ChildProcess::spawn(io.get_executor(), spec, {});
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().detail.find("not found in PATH"), std::string::npos);
}

TEST_F(Sandbox, AGrantThatReachesAProtectedPathIsRefused) {
    auto wide = policy_;
    wide.read.push_back(dir_.path());  // contains the identity directory
    auto p = sb::prepare(wide);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().code, sb::Errc::protected_path);
    EXPECT_NE(p.error().detail.find(dir_.path().string()), std::string::npos) << p.error().detail;
    auto inside = policy_;
    inside.write.push_back(secret_.parent_path() / "sub");
    auto q = sb::prepare(inside);
    ASSERT_FALSE(q);
    EXPECT_EQ(q.error().code, sb::Errc::protected_path);
    auto relative = policy_;
    relative.read.emplace_back("relative/path");
    auto r = sb::prepare(relative);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, sb::Errc::invalid_policy);
}

TEST_F(Sandbox, TheGatewaysFilesCannotBeReadAndTheTryIsReported) {
    const auto o = run(&policy_, "read", secret_.string());
    EXPECT_EQ(o.out, "refused: Permission denied") << o.spawn_error;
    EXPECT_TRUE(reported(o, "read", secret_.string(), true));
    const auto w = run(&policy_, "write", (secret_.parent_path() / "state.db").string());
    EXPECT_EQ(w.out, "refused: Permission denied");
    EXPECT_TRUE(reported(w, "create", (secret_.parent_path() / "state.db").string(), true));
}

TEST_F(Sandbox, ReadAndWriteFollowTheGrants) {
    const fs::path file = work_ / "notes.txt";
    std::ofstream(file) << "hello";
    EXPECT_EQ(run(&policy_, "read", file.string()).out, "refused: Permission denied");
    EXPECT_EQ(run(&policy_, "write", file.string()).out, "refused: Permission denied");
    auto readable = policy_;
    readable.read.push_back(work_);
    EXPECT_EQ(run(&readable, "read", file.string()).out, "ok 5 bytes");
    const auto denied = run(&readable, "write", file.string());
    EXPECT_EQ(denied.out, "refused: Permission denied");
    EXPECT_TRUE(reported(denied, "create", file.string(), false));
    auto writable = policy_;
    writable.write.push_back(work_);
    EXPECT_EQ(run(&writable, "write", (work_ / "new.txt").string()).out, "ok");
    EXPECT_TRUE(fs::exists(work_ / "new.txt"));
}

TEST_F(Sandbox, ProgramsOutsideTheGrantsDoNotRun) {
    const fs::path program = work_ / "tool";
    fs::copy_file("/bin/true", program);
    const auto o = run(&policy_, "exec", program.string());
    EXPECT_EQ(o.out, "refused: Permission denied");
    EXPECT_TRUE(reported(o, "execute", program.string(), false));
    EXPECT_EQ(run(&policy_, "exec", "/bin/true").out, "ok");
}

TEST_F(Sandbox, NetworkNoneRefusesSocketsAndReportsThem) {
    const Listener listener;
    const auto o = run(&policy_, "connect", listener.where());
    EXPECT_EQ(o.out, "refused: Permission denied");
    EXPECT_TRUE(reported(o, "network", "AF_INET", false));
    EXPECT_EQ(run(&policy_, "listen").out, "refused: Permission denied");
    auto open = policy_;
    open.network = sb::Network::any;
    EXPECT_EQ(run(&open, "connect", listener.where()).out, "ok");
}

TEST_F(Sandbox, NetworkLoopbackIsAnEmptyNetworkOfItsOwn) {
    if (!sb::probe().network_namespace) {
        GTEST_SKIP() << "no network namespaces here";
    }
    const Listener listener;  // on the host's loopback
    auto loop = policy_;
    loop.network = sb::Network::loopback;
    EXPECT_EQ(run(&loop, "connect", listener.where()).out, "refused: Connection refused");
    EXPECT_EQ(run(&loop, "listen").out, "ok");  // its own loopback works
}

TEST_F(Sandbox, InheritedDescriptorsAreNotThereToAccept) {
    const Listener listener;
    const auto o = run(&policy_, "accept", "3");
    EXPECT_EQ(o.out, "refused: Bad file descriptor");
    EXPECT_TRUE(reported(o, "accept", "fd 3", false));
}

TEST_F(Sandbox, TheGatewayCannotBeSignalledTracedOrRead) {
    // As the gateway does: no core dumps, /proc/PID/environ and mem for root only.
    (void)::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    struct Restore {
        Restore() = default;
        ~Restore() { (void)::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0); }
        Restore(const Restore&) = delete;
        Restore& operator=(const Restore&) = delete;
        Restore(Restore&&) = delete;
        Restore& operator=(Restore&&) = delete;
    } restore;
    const std::string self = std::to_string(::getpid());
    EXPECT_EQ(run(&policy_, "kill", self).out, "refused: Operation not permitted");
    EXPECT_EQ(run(&policy_, "kill", "-1").out, "refused: Operation not permitted");
    auto with_proc = policy_;
    with_proc.read.emplace_back("/proc");
    const auto environ_read = run(&with_proc, "environ", self);
    EXPECT_EQ(environ_read.out.rfind("refused: ", 0), 0U) << environ_read.out;
    EXPECT_EQ(run(&with_proc, "mem", self).out.rfind("refused: ", 0), 0U);
    EXPECT_EQ(run(&with_proc, "ptrace", self).out, "refused: Operation not permitted");
    EXPECT_EQ(run(&policy_, "unshare").out, "refused: Operation not permitted");
}

TEST_F(Sandbox, NoCapabilitiesEvenForRoot) {
    auto with_proc = policy_;
    with_proc.read.emplace_back("/proc");
    EXPECT_EQ(run(&with_proc, "caps").out, "0000000000000000 0000000000000000");
}

TEST_F(Sandbox, AnotherUserWhenRoot) {
    if (!sb::probe().root) {
        auto p = policy_;
        p.user = "nobody";
        auto prepared = sb::prepare(p);
        ASSERT_FALSE(prepared);
        EXPECT_EQ(prepared.error().code, sb::Errc::invalid_policy);
        return;
    }
    auto p = policy_;
    p.user = "nobody";
    const auto o = run(&p, "uid");
    EXPECT_EQ(o.out, "65534 65534") << o.spawn_error;
    auto unknown = policy_;
    unknown.user = "no-such-user-here";
    auto prepared = sb::prepare(unknown);
    ASSERT_FALSE(prepared);
    EXPECT_NE(prepared.error().detail.find("no such user"), std::string::npos);
}

TEST(SandboxPaths, IsWithin) {
    EXPECT_TRUE(sb::is_within("/a/b/c", "/a/b"));
    EXPECT_TRUE(sb::is_within("/a/b", "/a/b"));
    EXPECT_TRUE(sb::is_within("/a/b", "/"));
    EXPECT_FALSE(sb::is_within("/a/bc", "/a/b"));
    EXPECT_FALSE(sb::is_within("/a", "/a/b"));
}

TEST(SandboxNetwork, Names) {
    for (const auto n : {sb::Network::none, sb::Network::loopback, sb::Network::any}) {
        EXPECT_EQ(sb::parse_network(sb::to_string(n)), n);
    }
    EXPECT_FALSE(sb::parse_network("internet"));
}

}  // namespace
