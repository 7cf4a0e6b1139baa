// Scoped "interrupts off": for locks that interrupt handlers on the same CPU may also take.
#pragma once

#include <arch/x86_64/cpu.h>
#include <lamina/spinlock.h>

namespace lamina::x86 {

class InterruptGuard {
public:
    InterruptGuard() : were_enabled_(interrupts_enabled()) { disable_interrupts(); }
    ~InterruptGuard() {
        if (were_enabled_) enable_interrupts();
    }
    InterruptGuard(const InterruptGuard&) = delete;
    InterruptGuard& operator=(const InterruptGuard&) = delete;

private:
    bool were_enabled_;
};

// A spinlock held with interrupts off.
class IrqSpinLockGuard {
public:
    explicit IrqSpinLockGuard(SpinLock& lock) : lock_(lock) { lock_.lock(); }
    ~IrqSpinLockGuard() { lock_.unlock(); }
    IrqSpinLockGuard(const IrqSpinLockGuard&) = delete;
    IrqSpinLockGuard& operator=(const IrqSpinLockGuard&) = delete;

private:
    InterruptGuard interrupts_;
    SpinLock& lock_;
};

}  // namespace lamina::x86
