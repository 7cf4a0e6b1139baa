#include <hypervisor/vcpu.h>

namespace lamina {

const char* exit_reason_name(ExitReason reason) {
    switch (reason) {
        case ExitReason::Cpuid: return "CPUID";
        case ExitReason::Io: return "I/O";
        case ExitReason::MsrRead: return "RDMSR";
        case ExitReason::MsrWrite: return "WRMSR";
        case ExitReason::Hlt: return "HLT";
        case ExitReason::Hypercall: return "hypercall";
        case ExitReason::ControlRegister: return "control register";
        case ExitReason::Xsetbv: return "XSETBV";
        case ExitReason::Invlpg: return "INVLPG";
        case ExitReason::Stage2Fault: return "stage-2 fault";
        case ExitReason::Exception: return "exception";
        case ExitReason::ExternalInterrupt: return "external interrupt";
        case ExitReason::InterruptWindow: return "interrupt window";
        case ExitReason::TripleFault: return "triple fault";
        case ExitReason::InvalidState: return "invalid state";
        case ExitReason::Other: return "other";
    }
    return "?";
}

}  // namespace lamina
