#include <tests/guests/traps.h>

#include <lamina/interrupt_gate.h>

extern "C" const char trap_stubs[];  // traps.S: 16 bytes per vector

namespace guest {
namespace {

constexpr u16 kCodeSelector = 0x08;     // lib/src/pvh_entry.S
constexpr u64 kFirstInterrupt = 32;

alignas(16) InterruptGate idt[256];
volatile u8 fault_skip = 0;
volatile int last_fault = -1;
volatile u32 taken[256];

}  // namespace

void install_traps() {
    for (u32 v = 0; v < 256; ++v) {
        idt[v] = InterruptGate::to(reinterpret_cast<u64>(trap_stubs) + 16 * v, kCodeSelector);
    }
    DescriptorPointer pointer{sizeof(idt) - 1, reinterpret_cast<u64>(idt)};
    asm volatile("lidt %0" : : "m"(pointer) : "memory");
}

void expect_fault(u8 instruction_length) {
    last_fault = -1;
    fault_skip = instruction_length;
}

int take_fault() {
    const int vector = last_fault;
    last_fault = -1;
    fault_skip = 0;
    return vector;
}

u32 interrupts_taken(u8 vector) { return taken[vector]; }

[[gnu::weak]] void on_unexpected_trap(const TrapFrame&) {
    for (;;) asm volatile("cli; hlt");
}

}  // namespace guest

extern "C" void guest_trap(guest::TrapFrame* frame) {
    using namespace guest;
    if (frame->vector >= kFirstInterrupt) {
        taken[frame->vector] = taken[frame->vector] + 1;
        return;
    }
    if (fault_skip) {
        last_fault = static_cast<int>(frame->vector);
        frame->rip += fault_skip;
        fault_skip = 0;
        return;
    }
    Console console;
    format(console, "not ok - unexpected exception {} (error {:#x}) at rip {:#x}\n", frame->vector,
           frame->error_code, frame->rip);
    on_unexpected_trap(*frame);
}
