// Work that must happen when a scope ends, however it ends.
#pragma once

#include <type_traits>
#include <utility>

namespace pqmcp {

// Runs `f` when it goes out of scope: a return, an exception, or a coroutine
// frame destroyed while suspended, unless release() was called first. `f`
// must not throw (it runs in a destructor: catch inside it). Make the guard
// before the work it undoes: if taking `f` in throws (a captured copy that
// cannot be allocated), there is no guard and nothing runs.
//
//     OnExit untrack([this, key] { active.erase(key); });
//     active.insert(key);
template <class F>
class [[nodiscard]] OnExit final {
  public:
    explicit OnExit(F f) noexcept(std::is_nothrow_move_constructible_v<F>) : f_(std::move(f)) {}
    ~OnExit() {
        if (armed_) {
            f_();
        }
    }
    OnExit(const OnExit&) = delete;
    OnExit& operator=(const OnExit&) = delete;
    OnExit(OnExit&&) = delete;
    OnExit& operator=(OnExit&&) = delete;

    // It will not run.
    void release() noexcept { armed_ = false; }

  private:
    F f_;
    bool armed_ = true;
};

}  // namespace pqmcp
