// Shuts a socket down, both ways, when a test has not finished with it in
// time: a blocking read that would wait forever for an answer that never
// comes then fails, and the test fails instead of hanging its binary.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace pqmcp::test {

class SocketWatchdog final {
  public:
    SocketWatchdog(int fd, std::chrono::milliseconds limit)
        : thread_([this, fd, limit] {
              std::unique_lock lock(mutex_);
              if (!finished_.wait_for(lock, limit, [this] { return done_; })) {
                  ::shutdown(fd, SHUT_RDWR);
              }
          }) {}
    ~SocketWatchdog() {
        {
            const std::lock_guard lock(mutex_);
            done_ = true;
        }
        finished_.notify_all();
        thread_.join();
    }
    SocketWatchdog(const SocketWatchdog&) = delete;
    SocketWatchdog& operator=(const SocketWatchdog&) = delete;
    SocketWatchdog(SocketWatchdog&&) = delete;
    SocketWatchdog& operator=(SocketWatchdog&&) = delete;

  private:
    std::mutex mutex_;
    std::condition_variable finished_;
    bool done_ = false;
    std::thread thread_;  // last: it uses the members above
};

}  // namespace pqmcp::test
