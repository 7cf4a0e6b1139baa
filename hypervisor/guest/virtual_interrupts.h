// The interrupts waiting for one vCPU: a 256-bit request register, like a local APIC's IRR,
// delivered highest vector first. Any CPU may raise one (a timer, an event channel); the vCPU's
// own CPU delivers them before it enters the guest: injected when the guest can take one,
// otherwise the backend is asked for the interrupt window. Vectors below 16 are refused, as a
// local APIC refuses them (SDM Vol. 3A 11.5.2, "illegal vector"). Task priority is not applied:
// there is no virtual local APIC yet. Hardware-independent (Catch2 tests with a fake vCPU).
#pragma once

#include <hypervisor/vcpu.h>
#include <lamina/atomic.h>
#include <lamina/types.h>

namespace lamina {

class VirtualInterrupts {
public:
    static constexpr u8 kFirstVector = 16;

    // False for a vector below kFirstVector. A vector already pending stays pending once.
    bool raise(u8 vector);
    // One load: the run loop tests it before every entry.
    bool pending() const { return summary_.load(MemoryOrder::Relaxed) != 0; }
    bool is_pending(u8 vector) const;
    // Forgets every pending vector (a vCPU that starts again).
    void clear();
    // Before an entry, on the vCPU's CPU: injects the highest pending vector if the guest can take
    // it now, and keeps the interrupt window requested exactly while more wait.
    void deliver(Vcpu& vcpu);

private:
    static constexpr u32 kWords = 256 / 64;
    // Takes the highest pending vector off the register; -1 when none.
    int take_highest();

    Atomic<u64> words_[kWords];
    Atomic<u32> summary_;  // bit n: words_[n] may be non-zero
};

}  // namespace lamina
