// Ticket spinlock: FIFO fair, so no CPU starves under contention. Interrupt state is the
// caller's business (arch/ wraps it where handlers may take the same lock).
#pragma once

#include <lamina/atomic.h>

namespace lamina {

class SpinLock {
public:
    constexpr SpinLock() = default;
    SpinLock(const SpinLock&) = delete;
    SpinLock& operator=(const SpinLock&) = delete;

    void lock() {
        u32 ticket = next_.fetch_add(1, MemoryOrder::Relaxed);
        while (serving_.load(MemoryOrder::Acquire) != ticket) cpu_relax();
    }
    bool try_lock() {
        u32 serving = serving_.load(MemoryOrder::Relaxed);
        u32 expected = serving;
        return next_.compare_exchange(expected, serving + 1, MemoryOrder::Acquire);
    }
    void unlock() { serving_.store(serving_.load(MemoryOrder::Relaxed) + 1, MemoryOrder::Release); }
    bool is_locked() const {
        return next_.load(MemoryOrder::Relaxed) != serving_.load(MemoryOrder::Relaxed);
    }

private:
    Atomic<u32> next_{0};
    Atomic<u32> serving_{0};
};

template <typename Lock>
class LockGuard {
public:
    explicit LockGuard(Lock& lock) : lock_(lock) { lock_.lock(); }
    ~LockGuard() { lock_.unlock(); }
    LockGuard(const LockGuard&) = delete;
    LockGuard& operator=(const LockGuard&) = delete;

private:
    Lock& lock_;
};

}  // namespace lamina
