// The vendor-neutral virtual CPU: what the core sees of VMX and SVM. A backend
// (arch/x86_64/vmx, arch/x86_64/svm) implements Vcpu; the core runs it until an exit, reads the
// neutral ExitInfo, handles it through this interface and runs it again. The core never
// includes a VMX or SVM header.
#pragma once

#include <arch/x86_64/registers.h>
#include <lamina/atomic.h>
#include <lamina/types.h>

namespace lamina {

// General-purpose registers in the x86 encoding order (ModRM reg field, SDM Vol. 2 table 2-2).
enum class Gpr : u8 { Rax, Rcx, Rdx, Rbx, Rsp, Rbp, Rsi, Rdi, R8, R9, R10, R11, R12, R13, R14, R15 };
constexpr usize kGprCount = 16;

enum class SegmentRegister : u8 { Es, Cs, Ss, Ds, Fs, Gs, Ldtr, Tr };

struct Segment {
    u16 selector;
    u64 base;
    u32 limit;      // in bytes, expanded (granularity applied)
    u16 attributes; // the VMX access-rights layout: type[3:0] S[4] DPL[6:5] P[7] AVL[12] L[13] D/B[14] G[15]
};

struct DescriptorTable {
    u64 base;
    u16 limit;
};

enum class ControlRegister : u8 { Cr0 = 0, Cr2 = 2, Cr3 = 3, Cr4 = 4, Cr8 = 8 };

// Why the guest stopped, in the core's terms.
enum class ExitReason : u8 {
    Cpuid,
    Io,
    MsrRead,
    MsrWrite,
    Hlt,
    Hypercall,          // VMCALL or VMMCALL
    ControlRegister,    // a CR access the backend could not complete itself
    Xsetbv,
    Invlpg,
    Stage2Fault,        // EPT violation / misconfiguration, NPT fault
    Exception,          // an intercepted guest exception
    ExternalInterrupt,  // a host interrupt arrived while the guest ran (handled by the host)
    InterruptWindow,    // the guest can take an interrupt now
    TripleFault,
    InvalidState,       // VM entry failed / VMEXIT_INVALID: the backend could not run it
    Other,              // anything else: the guest is ended with a report
};

const char* exit_reason_name(ExitReason reason);

struct IoExit {
    u16 port;
    u8 size;      // 1, 2 or 4
    bool in;
    bool string;  // INS/OUTS: not emulated yet, the guest is ended
    bool rep;
};

struct Stage2FaultExit {
    u64 guest_physical;
    bool read, write, execute;
    bool misconfigured;  // the stage-2 entry itself is bad (EPT misconfiguration): a hypervisor bug
};

struct ExceptionExit {
    u8 vector;
    bool has_error_code;
    u32 error_code;
};

struct ControlRegisterExit {
    ControlRegister cr;
    bool write;
    Gpr gpr;
};

struct ExitInfo {
    ExitReason reason;
    u64 hardware_code;   // the raw VMX basic exit reason or SVM exit code, for reports
    u64 qualification;   // the raw exit qualification or EXITINFO1, for reports
    union {
        IoExit io;
        Stage2FaultExit stage2;
        ExceptionExit exception;
        ControlRegisterExit control_register;
    };
    // Why a VM entry failed (InvalidState), static text from the backend.
    const char* failure;
};

// How a guest starts (its first instruction's CPU state).
enum class EntryMode : u8 {
    Real,         // CS:IP = entry >> 4 : entry & 0xf, paging and protection off
    Protected32,  // the PVH entry: flat 32-bit segments, paging off, EBX = start info
    Long64        // a flat 64-bit code segment, paging on: EntryState's cr0, cr3, cr4 and efer
};

// Where the guest's code runs: its privilege level, and whether in 64-bit mode (EFER.LMA and
// CS.L). The hypercall ABI allows calls from CPL 0 in 64-bit mode only.
struct ExecutionMode {
    u8 cpl;
    bool long_mode;
};

// Segments are flat (base 0, limit 4 GiB) in every mode but Real, and the registers not named
// here start as after INIT. The core checks the state (hypervisor/hypercall/vcpu_context.h)
// before a backend loads it.
struct EntryState {
    EntryMode mode = EntryMode::Protected32;
    u64 rip = 0;
    u64 rflags = x86::kRflagsFixed;
    u64 gprs[kGprCount] = {};  // in Gpr order
    // Long64's paging, as the guest reads it (PE and PG, PAE, LME); the other modes start with
    // paging off and these 0.
    u64 cr0 = 0;
    u64 cr3 = 0;
    u64 cr4 = 0;
    u64 efer = 0;
};

// `mode` at `rip` with EBX and ESP as given, every other register 0: the PVH entry (EBX = the
// start info) and the self-tests' guests.
constexpr EntryState make_entry_state(EntryMode mode, u64 rip, u64 rbx = 0, u64 rsp = 0) {
    EntryState entry{.mode = mode, .rip = rip};
    entry.gprs[static_cast<u8>(Gpr::Rbx)] = rbx;
    entry.gprs[static_cast<u8>(Gpr::Rsp)] = rsp;
    return entry;
}

// The stage-2 space a vCPU runs in (hypervisor/stage2): the root table for the EPTP or nCR3, and
// the generation counter that moves when a change needs the vCPUs' TLBs flushed.
struct Stage2Binding {
    u64 root;
    const Atomic<u64>* generation;
};

class Vcpu {
public:
    // Runs the guest until the next exit the core must see.
    virtual ExitInfo run() = 0;

    u64 gpr(Gpr r) const { return gprs_[static_cast<u8>(r)]; }
    void set_gpr(Gpr r, u64 v) { gprs_[static_cast<u8>(r)] = v; }
    virtual u64 rip() const = 0;
    virtual void set_rip(u64 rip) = 0;
    virtual u64 rflags() const = 0;
    virtual void set_rflags(u64 rflags) = 0;
    virtual u64 control_register(ControlRegister cr) const = 0;
    virtual void set_control_register(ControlRegister cr, u64 value) = 0;
    // The guest-visible EFER (an SVM backend keeps EFER.SVME set underneath, as VMRUN requires).
    virtual u64 efer() const = 0;
    // For an intercepted WRMSR to EFER the core has validated; LMA follows LME and CR0.PG.
    virtual void set_efer(u64 efer) = 0;
    virtual Segment segment(SegmentRegister s) const = 0;
    virtual void set_segment(SegmentRegister s, const Segment& value) = 0;
    virtual DescriptorTable gdtr() const = 0;
    virtual DescriptorTable idtr() const = 0;
    // One call on the hypercall path, where segment() twice would cost conversions.
    virtual ExecutionMode execution_mode() const = 0;

    // Steps over the instruction that caused the last exit.
    virtual void advance_rip() = 0;
    // Delivers an exception to the guest on the next entry.
    virtual void inject_exception(u8 vector, bool has_error_code = false, u32 error_code = 0) = 0;

    // External interrupts; the core's virtual interrupt controller picks the vector. True when
    // the guest can take one on the next entry: RFLAGS.IF set, no STI / MOV SS shadow, and no
    // other event already queued for injection.
    virtual bool can_inject_interrupt() const = 0;
    // Delivers external interrupt `vector` on the next entry; only when can_inject_interrupt().
    virtual void inject_interrupt(u8 vector) = 0;
    // Makes the guest exit (InterruptWindow) as soon as it can take an interrupt, or stops that.
    virtual void request_interrupt_window(bool on) = 0;

    // IA32_PAT, which both backends switch in hardware (VMCS guest PAT, VMCB G_PAT); the core
    // validates a guest's write before it lands here.
    virtual u64 pat() const = 0;
    virtual void set_pat(u64 pat) = 0;

    // The stage-2 generation (hypervisor/stage2) this vCPU's TLB was last flushed at: every
    // change to the space up to it is in effect for the vCPU once it has entered again.
    virtual u64 flushed_stage2_generation() const = 0;

    // On the CPU that last ran it, when that CPU turns to other work: from now on any CPU may
    // run it (VMX: VMCLEAR, so that another CPU can load the VMCS; SVM keeps nothing in a CPU).
    // run() on a CPU other than the last one reloads the host state and flushes the vCPU's
    // TLB tags there.
    virtual void release() = 0;

protected:
    ~Vcpu() = default;
    // Saved and restored by the backend's entry stub (RSP and, on SVM, RAX live in the VMCB:
    // the backend keeps these slots in sync).
    u64 gprs_[kGprCount] = {};
};

}  // namespace lamina
