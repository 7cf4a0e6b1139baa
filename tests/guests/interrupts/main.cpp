// Virtual interrupts and HLT, driven by the self-test (hypervisor/guest/guest_selftests.cpp),
// which arms this vCPU's one-shot timer from outside:
//  1. before the guest starts, for vector 0x40 a few milliseconds ahead: the guest's STI; HLT
//     must block until then and wake with that interrupt;
//  2. once the guest has reported check 1, due at once for vector 0x41 while the guest runs with
//     interrupts off: nothing may arrive until STI, then exactly one interrupt, right after the
//     STI shadow (the interrupt window).
// Finally HLT with interrupts off: nothing can wake it, the guest is over.
#include <tests/guests/traps.h>

using namespace guest;

extern "C" void guest_main(u64) {
    Checks t;
    install_traps();
    constexpr u8 kTimerVector = 0x40;
    constexpr u8 kLateVector = 0x41;

    asm volatile("sti; hlt; cli" ::: "memory");
    t.expect(interrupts_taken(kTimerVector) == 1, "hlt: the timer's interrupt woke the vCPU", "taken {}",
             interrupts_taken(kTimerVector));
    // The self-test raises kLateVector now, while interrupts are off.
    t.expect(interrupts_taken(kLateVector) == 0, "cli: a pending interrupt waits while IF is clear", "taken {}",
             interrupts_taken(kLateVector));
    asm volatile("sti; nop" ::: "memory");
    const u32 at_window = interrupts_taken(kLateVector);
    disable_interrupts();
    t.expect(at_window == 1, "sti: the pending interrupt arrives in the window after STI's shadow", "taken {}",
             at_window);
    t.expect(interrupts_taken(kTimerVector) == 1 && interrupts_taken(kLateVector) == 1,
             "each interrupt came exactly once");
    t.finish();
}
