// The ABI's numbers for the core's exit reasons (domain_exit_stats, fault reports): the ABI's
// never change, the core's enum may. A reason added to ExitReason does not compile until it has
// an ABI number here (-Wswitch) and in lib/include/lamina/abi/stats.h.
#pragma once

#include <hypervisor/vcpu.h>
#include <lamina/abi/stats.h>

namespace lamina::hypercall {

constexpr lamina_exit_reason abi_exit_reason(ExitReason reason) {
    switch (reason) {
        case ExitReason::Cpuid: return LAMINA_EXIT_CPUID;
        case ExitReason::Io: return LAMINA_EXIT_IO;
        case ExitReason::MsrRead: return LAMINA_EXIT_MSR_READ;
        case ExitReason::MsrWrite: return LAMINA_EXIT_MSR_WRITE;
        case ExitReason::Hlt: return LAMINA_EXIT_HLT;
        case ExitReason::Hypercall: return LAMINA_EXIT_HYPERCALL;
        case ExitReason::ControlRegister: return LAMINA_EXIT_CONTROL_REGISTER;
        case ExitReason::Xsetbv: return LAMINA_EXIT_XSETBV;
        case ExitReason::Invlpg: return LAMINA_EXIT_INVLPG;
        case ExitReason::Stage2Fault: return LAMINA_EXIT_STAGE2_FAULT;
        case ExitReason::Exception: return LAMINA_EXIT_EXCEPTION;
        case ExitReason::ExternalInterrupt: return LAMINA_EXIT_EXTERNAL_INTERRUPT;
        case ExitReason::InterruptWindow: return LAMINA_EXIT_INTERRUPT_WINDOW;
        case ExitReason::TripleFault: return LAMINA_EXIT_TRIPLE_FAULT;
        case ExitReason::InvalidState: return LAMINA_EXIT_INVALID_STATE;
        case ExitReason::Other: return LAMINA_EXIT_OTHER;
    }
    return LAMINA_EXIT_OTHER;  // not an ExitReason at all
}

}  // namespace lamina::hypercall
