// A guest that triple-faults on purpose: with an empty IDT, its breakpoint cannot be delivered,
// nor the #GP that follows, nor the double fault. The hypervisor must end it, and only it.
#include <tests/guests/guest.h>

using namespace guest;

extern "C" void guest_main(u64) {
    Console console;
    format(console, "about to triple-fault\n");
    struct [[gnu::packed]] {
        u16 limit;
        u64 base;
    } empty_idt{0, 0};
    asm volatile("lidt %0; int3" : : "m"(empty_idt));
}
