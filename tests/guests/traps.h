// Exceptions and interrupts in the 64-bit test guests: an IDT whose every vector reaches
// guest_trap(). An exception the test expects (expect_fault) is counted and its instruction
// skipped; an interrupt is counted per vector; anything else is reported as "not ok" and the
// guest stops.
#pragma once

#include <tests/guests/guest.h>

namespace guest {

struct TrapFrame {
    u64 r15, r14, r13, r12, r11, r10, r9, r8, rdi, rsi, rbp, rbx, rdx, rcx, rax;
    u64 vector, error_code, rip, cs, rflags, rsp, ss;
};

// What happens after an exception nobody expected has been reported: by default the guest
// stops (HLT with interrupts off); a guest may define its own (weak).
void on_unexpected_trap(const TrapFrame& frame);

// Loads the IDT (64-bit interrupt gates on the PVH entry's code selector).
void install_traps();

// The next exception skips `instruction_length` bytes of the instruction that raised it.
void expect_fault(u8 instruction_length);
// The vector of the last expected exception (-1: none came), and forgets it.
int take_fault();

// Interrupts taken per vector since the start.
u32 interrupts_taken(u8 vector);

inline void enable_interrupts() { asm volatile("sti" ::: "memory"); }
inline void disable_interrupts() { asm volatile("cli" ::: "memory"); }

// RDMSR and WRMSR that report a #GP instead of dying of it: the vector, or -1.
inline int rdmsr_checked(u32 msr, u64* value) {
    u32 lo = 0, hi = 0;
    expect_fault(2);
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr) : "memory");
    *value = (u64{hi} << 32) | lo;
    return take_fault();
}
inline int wrmsr_checked(u32 msr, u64 value) {
    expect_fault(2);
    asm volatile("wrmsr" : : "c"(msr), "a"(static_cast<u32>(value)), "d"(static_cast<u32>(value >> 32)) : "memory");
    return take_fault();
}

}  // namespace guest
