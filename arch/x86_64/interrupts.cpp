#include <arch/x86_64/interrupts.h>

#include <arch/x86_64/cpu.h>
#include <hypervisor/panic.h>

namespace lamina::x86 {
namespace {

InterruptHandler handlers[256];

constexpr const char* kExceptionNames[32] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow", "#BR bound range",
    "#UD invalid opcode", "#NM device not available", "#DF double fault", "coprocessor overrun",
    "#TS invalid TSS", "#NP segment not present", "#SS stack fault", "#GP general protection",
    "#PF page fault", "reserved", "#MF x87 error", "#AC alignment check", "#MC machine check",
    "#XM SIMD error", "#VE virtualization exception", "#CP control protection", "reserved",
    "reserved", "reserved", "reserved", "reserved", "reserved", "#HV hypervisor injection",
    "#VC VMM communication", "#SX security", "reserved"};

constexpr u64 kPageFaultVector = 14;
constexpr u64 kNmiVector = 2;

}  // namespace

const char* exception_name(u64 vector) {
    return vector < 32 ? kExceptionNames[vector] : "external interrupt";
}

void set_interrupt_handler(u8 vector, InterruptHandler handler) { handlers[vector] = handler; }

}  // namespace lamina::x86

extern "C" void interrupt_dispatch(lamina::x86::InterruptFrame* frame) {
    using namespace lamina;
    using namespace lamina::x86;
    u64 vector = frame->vector;
    if (vector == kNmiVector && panic_in_progress()) halt_forever();  // another CPU panicked
    if (InterruptHandler handler = handlers[vector]) {
        handler(*frame);
        return;
    }
    if (vector == kPageFaultVector) {
        // Error code bits (SDM Vol. 3A 4.7): P, W/R, U/S, RSVD, I/D.
        u64 code = frame->error_code;
        const FormatArg args[] = {read_cr2(), (code & 1) ? "protection violation" : "not present",
                                  (code & 2) ? "write" : (code & 16) ? "instruction fetch" : "read",
                                  (code & 8) ? ", reserved bit set" : ""};
        vpanic(frame, "page fault at {:#x}: {} on {}{}", args, array_size(args));
    }
    if (vector == 8)
        vpanic(frame, "double fault (a stack overflow into a guard page looks like this)", nullptr, 0);
    vpanic(frame, "unexpected exception or interrupt in the hypervisor", nullptr, 0);
}
