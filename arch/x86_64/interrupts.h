// Interrupt and exception dispatch. Exceptions in the hypervisor are fatal and diagnosed;
// device and IPI vectors go to registered handlers.
#pragma once

#include <lamina/types.h>

namespace lamina::x86 {

// Layout pushed by isr.S, lowest address first.
struct InterruptFrame {
    u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    u64 vector, error_code;
    u64 rip, cs, rflags, rsp, ss;
};

// Vectors the hypervisor uses for itself (above the ones an IOAPIC will be routed to).
namespace vector {
constexpr u8 kConsoleInput = 0x40;  // the UART's receive interrupt, through the I/O APIC
constexpr u8 kTimer = 0xe0;
constexpr u8 kCallFunction = 0xf0;
constexpr u8 kWakeup = 0xf1;  // only ends a hlt
constexpr u8 kReschedule = 0xf2;  // the CPU's scheduler must decide again (hypervisor/sched)
constexpr u8 kSpurious = 0xff;
}  // namespace vector

using InterruptHandler = void (*)(InterruptFrame& frame);
void set_interrupt_handler(u8 vector, InterruptHandler handler);

const char* exception_name(u64 vector);

}  // namespace lamina::x86
