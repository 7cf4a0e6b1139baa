#include <hypervisor/guest/virtual_interrupts.h>

namespace lamina {

bool VirtualInterrupts::raise(u8 vector) {
    if (vector < kFirstVector) return false;
    const u32 word = vector / 64;
    words_[word].fetch_or(u64{1} << (vector % 64), MemoryOrder::Release);
    summary_.fetch_or(1u << word, MemoryOrder::Release);
    return true;
}

bool VirtualInterrupts::is_pending(u8 vector) const {
    return (words_[vector / 64].load(MemoryOrder::Acquire) >> (vector % 64)) & 1;
}

int VirtualInterrupts::take_highest() {
    for (int word = kWords - 1; word >= 0; --word) {
        u64 bits = words_[word].load(MemoryOrder::Acquire);
        if (!bits) continue;
        const int bit = 63 - __builtin_clzll(bits);
        const u64 rest = words_[word].fetch_and(~(u64{1} << bit), MemoryOrder::AcqRel) & ~(u64{1} << bit);
        if (!rest) {
            // A raise() racing with this may have set a bit again after the fetch_and: it set
            // the summary after its word, so clearing first and re-checking loses nothing.
            summary_.fetch_and(~(1u << word), MemoryOrder::AcqRel);
            if (words_[word].load(MemoryOrder::Acquire)) summary_.fetch_or(1u << word, MemoryOrder::Release);
        }
        return word * 64 + bit;
    }
    return -1;
}

void VirtualInterrupts::deliver(Vcpu& vcpu) {
    if (vcpu.can_inject_interrupt()) {
        const int vector = take_highest();
        if (vector >= 0) vcpu.inject_interrupt(static_cast<u8>(vector));
    }
    // Whatever still waits needs the next window; an injection just made closes this one.
    vcpu.request_interrupt_window(pending());
}

void VirtualInterrupts::clear() {
    for (Atomic<u64>& word : words_) word.store(0, MemoryOrder::Relaxed);
    summary_.store(0, MemoryOrder::Relaxed);
}

}  // namespace lamina
