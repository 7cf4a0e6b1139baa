#include <hypervisor/guest/exit_handler.h>
#include <arch/x86_64/registers.h>

namespace lamina {
namespace {

using namespace x86;

constexpr u8 kGeneralProtection = 13;

u64 edx_eax(const Vcpu& vcpu) { return (vcpu.gpr(Gpr::Rdx) << 32) | static_cast<u32>(vcpu.gpr(Gpr::Rax)); }

}  // namespace

const char* guest_end_name(GuestEnd end) {
    switch (end) {
        case GuestEnd::Running: return "running";
        case GuestEnd::Blocked: return "blocked";
        case GuestEnd::Yielded: return "yielded";
        case GuestEnd::Halted: return "halted";
        case GuestEnd::TripleFault: return "triple fault";
        case GuestEnd::Stage2Fault: return "an access its stage-2 mapping does not allow";
        case GuestEnd::BadMmio: return "a device access that cannot be emulated";
        case GuestEnd::Shutdown: return "shut down";
        case GuestEnd::InvalidState: return "invalid state";
        case GuestEnd::Unhandled: return "unhandled exit";
        case GuestEnd::ExitBudget: return "exit budget used up";
    }
    return "?";
}

GuestEnd ExitHandler::handle(Vcpu& vcpu, const ExitInfo& exit) {
    switch (exit.reason) {
        case ExitReason::Cpuid: return cpuid(vcpu);
        case ExitReason::Io: return io(vcpu, exit.io);
        case ExitReason::MsrRead: return msr(vcpu, false);
        case ExitReason::MsrWrite: return msr(vcpu, true);
        case ExitReason::Xsetbv: return xsetbv(vcpu);
        case ExitReason::ExternalInterrupt: host_.take_host_interrupts(); return GuestEnd::Running;
        case ExitReason::Hypercall: return hypercall(vcpu);
        case ExitReason::Hlt: return hlt(vcpu);
        // The owner delivers pending interrupts before every entry; the exit only says "now".
        case ExitReason::InterruptWindow: return GuestEnd::Running;
        case ExitReason::TripleFault: return GuestEnd::TripleFault;
        case ExitReason::Stage2Fault: return stage2_fault(vcpu, exit.stage2);
        case ExitReason::InvalidState: return GuestEnd::InvalidState;
        default: return GuestEnd::Unhandled;
    }
}

GuestEnd ExitHandler::cpuid(Vcpu& vcpu) {
    u32 leaf = static_cast<u32>(vcpu.gpr(Gpr::Rax));
    u32 subleaf = static_cast<u32>(vcpu.gpr(Gpr::Rcx));
    // CR4 only where the answer depends on it: on VMX reading it costs VMREADs.
    const bool osxsave =
        cpuid_.reflects_osxsave(leaf) && (vcpu.control_register(ControlRegister::Cr4) & kCr4Osxsave);
    cpuid::Registers r = cpuid_.lookup(leaf, subleaf, {.apic_id = vcpu_index_, .osxsave = osxsave, .xcr0 = xcr0_});
    vcpu.set_gpr(Gpr::Rax, r.eax);
    vcpu.set_gpr(Gpr::Rbx, r.ebx);
    vcpu.set_gpr(Gpr::Rcx, r.ecx);
    vcpu.set_gpr(Gpr::Rdx, r.edx);
    vcpu.advance_rip();
    return GuestEnd::Running;
}

GuestEnd ExitHandler::io(Vcpu& vcpu, const IoExit& io) {
    if (io.string) return GuestEnd::Unhandled;  // INS/OUTS are not emulated yet
    u64 rax = vcpu.gpr(Gpr::Rax);
    const u64 width = io.size == 4 ? 0xffffffff : (u64{1} << (8 * io.size)) - 1;
    IoPortHandler* handler = ports_.find(io.port, io.size);
    if (handler && !io.in) {
        handler->write(io.port, io.size, static_cast<u32>(rax & width));
    } else if (io.in) {
        // The handler's value, or all ones: an unclaimed port floats high. A 32-bit IN
        // zero-extends into RAX; 8 and 16-bit keep the rest of it (SDM Vol. 1 3.4.1.1).
        u64 value = handler ? handler->read(io.port, io.size) & width : width;
        vcpu.set_gpr(Gpr::Rax, io.size == 4 ? value : (rax & ~width) | value);
    }
    if (!handler) {
        // A guest probing for hardware is normal: reported, rate-limited (writes are dropped).
        u64 n = ++unclaimed_io_;
        if (n <= kUnclaimedIoReported || n % 4096 == 0) [[unlikely]] host_.unclaimed_io(io, n);
    }
    vcpu.advance_rip();
    return GuestEnd::Running;
}

GuestEnd ExitHandler::msr(Vcpu& vcpu, bool write) {
    const u32 index = static_cast<u32>(vcpu.gpr(Gpr::Rcx));
    if (index == LAMINA_HYPERCALL_PAGE_MSR) [[unlikely]] {
        // Write-only (the ABI): a read, or a value that names no page of the guest, is #GP.
        if (!write || !host_.install_hypercall_page(edx_eax(vcpu))) {
            vcpu.inject_exception(kGeneralProtection, true, 0);
            return GuestEnd::Running;
        }
        vcpu.advance_rip();
        return GuestEnd::Running;
    }
    const MsrContext context{.amd = cpuid_.amd(), .bootstrap = vcpu_index_ == 0,
                             .tsc = index == msr_index::kTsc ? host_.tsc() : 0};
    VirtualMsrs::Result result;
    if (write) {
        result = msrs_.write(vcpu, context, index, edx_eax(vcpu));
    } else {
        const VirtualMsrs::Read read = msrs_.read(vcpu, context, index);
        result = read.result;
        if (result == VirtualMsrs::Result::Done) {
            vcpu.set_gpr(Gpr::Rax, static_cast<u32>(read.value));
            vcpu.set_gpr(Gpr::Rdx, read.value >> 32);
        }
    }
    if (result == VirtualMsrs::Result::Fault) {
        vcpu.inject_exception(kGeneralProtection, true, 0);  // the instruction does not complete
        return GuestEnd::Running;
    }
    vcpu.advance_rip();
    return GuestEnd::Running;
}

// HLT stops the vCPU until an interrupt it can take arrives: with RFLAGS.IF clear none ever can
// (NMIs aside, which no one sends a guest yet), so that guest is over.
GuestEnd ExitHandler::hlt(Vcpu& vcpu) {
    vcpu.advance_rip();
    return (vcpu.rflags() & kRflagsInterrupt) ? GuestEnd::Blocked : GuestEnd::Halted;
}

// XSETBV (SDM Vol. 2, XSETBV): XCR0 is the only register, and the value must be one the
// domain's CPUID allows and the CPU accepts; anything else is #GP, as on hardware.
GuestEnd ExitHandler::xsetbv(Vcpu& vcpu) {
    u64 value = edx_eax(vcpu);
    if (static_cast<u32>(vcpu.gpr(Gpr::Rcx)) != 0 || !cpuid_.accepts_xcr0(value)) {
        vcpu.inject_exception(kGeneralProtection, true, 0);
        return GuestEnd::Running;
    }
    host_.load_xcr0(value);
    xcr0_ = value;
    vcpu.advance_rip();
    return GuestEnd::Running;
}

// Device regions have no stage-2 mapping, so every access there faults and is emulated; a fault
// anywhere else is an access the guest's memory does not allow, which ends it.
GuestEnd ExitHandler::stage2_fault(Vcpu& vcpu, const Stage2FaultExit& fault) {
    if (fault.misconfigured || fault.execute || !mmio_.find(fault.guest_physical, 1)) return GuestEnd::Stage2Fault;
    const emulate::MmioResult result = emulate::emulate_mmio(vcpu, memory_, mmio_, paging_, fault.guest_physical,
                                                             fault.write);
    switch (result.status) {
        case emulate::MmioStatus::Ok: return GuestEnd::Running;
        case emulate::MmioStatus::Fault:
            // The instruction cannot be fetched now: the guest sees the fault a fetch would raise.
            if (result.vector == emulate::kPageFaultVector)
                vcpu.set_control_register(ControlRegister::Cr2, result.address);
            vcpu.inject_exception(result.vector, true, result.error_code);
            return GuestEnd::Running;
        default:
            mmio_failure_ = result;
            return GuestEnd::BadMmio;
    }
}

// VMCALL / VMMCALL: the number in RAX, the arguments in RDI, RSI, RDX, R10, R8, the result in
// RAX (hypervisor/hypercall/dispatcher.h). A continued call leaves RIP on the instruction.
GuestEnd ExitHandler::hypercall(Vcpu& vcpu) {
    const ExecutionMode mode = vcpu.execution_mode();
    const hypercall::Caller caller{.domain_id = domain_id_,
                                   .control_domain = control_domain_,
                                   .cpl = mode.cpl,
                                   .long_mode = mode.long_mode};
    u64 args[hypercall::kMaxArgs] = {vcpu.gpr(Gpr::Rdi), vcpu.gpr(Gpr::Rsi), vcpu.gpr(Gpr::Rdx),
                                     vcpu.gpr(Gpr::R10), vcpu.gpr(Gpr::R8)};
    const i64 result = hypercall::dispatch(hypercalls_, caller, vcpu.gpr(Gpr::Rax), args);
    if (result == hypercall::kContinue) {
        constexpr Gpr kArgumentRegisters[] = {Gpr::Rdi, Gpr::Rsi, Gpr::Rdx, Gpr::R10, Gpr::R8};
        for (usize i = 0; i < hypercall::kMaxArgs; ++i) vcpu.set_gpr(kArgumentRegisters[i], args[i]);
    } else {
        vcpu.set_gpr(Gpr::Rax, static_cast<u64>(result));
        vcpu.advance_rip();
    }
    const GuestEnd next = requested_;
    requested_ = GuestEnd::Running;
    return next;
}

}  // namespace lamina
