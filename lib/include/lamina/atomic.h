// Atomics over the compiler builtins (no <atomic> in freestanding images).
#pragma once

#include <lamina/types.h>

namespace lamina {

enum class MemoryOrder : int {
    Relaxed = __ATOMIC_RELAXED,
    Acquire = __ATOMIC_ACQUIRE,
    Release = __ATOMIC_RELEASE,
    AcqRel = __ATOMIC_ACQ_REL,
    SeqCst = __ATOMIC_SEQ_CST,
};

template <typename T>
class Atomic {
public:
    constexpr Atomic() : value_() {}
    constexpr explicit Atomic(T v) : value_(v) {}
    Atomic(const Atomic&) = delete;
    Atomic& operator=(const Atomic&) = delete;

    T load(MemoryOrder o = MemoryOrder::SeqCst) const {
        return __atomic_load_n(&value_, static_cast<int>(o));
    }
    void store(T v, MemoryOrder o = MemoryOrder::SeqCst) {
        __atomic_store_n(&value_, v, static_cast<int>(o));
    }
    T exchange(T v, MemoryOrder o = MemoryOrder::SeqCst) {
        return __atomic_exchange_n(&value_, v, static_cast<int>(o));
    }
    bool compare_exchange(T& expected, T desired, MemoryOrder o = MemoryOrder::SeqCst) {
        // The failure order may not contain a release: drop it from Release and AcqRel.
        int failure = o == MemoryOrder::AcqRel    ? __ATOMIC_ACQUIRE
                      : o == MemoryOrder::Release ? __ATOMIC_RELAXED
                                                  : static_cast<int>(o);
        return __atomic_compare_exchange_n(&value_, &expected, desired, false, static_cast<int>(o), failure);
    }
    T fetch_add(T v, MemoryOrder o = MemoryOrder::SeqCst) {
        return __atomic_fetch_add(&value_, v, static_cast<int>(o));
    }
    T fetch_sub(T v, MemoryOrder o = MemoryOrder::SeqCst) {
        return __atomic_fetch_sub(&value_, v, static_cast<int>(o));
    }
    T fetch_or(T v, MemoryOrder o = MemoryOrder::SeqCst) {
        return __atomic_fetch_or(&value_, v, static_cast<int>(o));
    }
    T fetch_and(T v, MemoryOrder o = MemoryOrder::SeqCst) {
        return __atomic_fetch_and(&value_, v, static_cast<int>(o));
    }

private:
    T value_;
};

inline void cpu_relax() {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
}

}  // namespace lamina
