// The core's answers to a guest's exits, through the vendor-neutral vCPU only: CPUID by the
// domain's policy, port I/O (to the domain's port handlers; unclaimed ports float high), MMIO to
// the domain's device regions (hypervisor/emulate: fetched, decoded and emulated), the MSR
// allow-list (msr_allow_list.h), XSETBV, hypercalls, HLT and the exits that end a guest. Hardware-independent, so
// Catch2 drives it with a fake vCPU; what touches the machine goes through ExitHost.
#pragma once

#include <hypervisor/cpuid/cpuid_policy.h>
#include <hypervisor/emulate/mmio.h>
#include <hypervisor/guest/io_ports.h>
#include <hypervisor/guest/msr_allow_list.h>
#include <hypervisor/hypercall/dispatcher.h>
#include <hypervisor/vcpu.h>

namespace lamina {

enum class GuestEnd : u8 {
    Running,
    Blocked,          // not an end: HLT with interrupts on; it sleeps until an interrupt is due
    Yielded,          // not an end: vcpu_yield; it gives its CPU to others
    Halted,           // HLT with interrupts off: nothing can wake it
    TripleFault,
    Stage2Fault,      // an access its memory does not allow (unmapped, or protected)
    BadMmio,          // an access to a device region that cannot be emulated (mmio_failure())
    Shutdown,         // it shut itself down (the shutdown hypercall; its owner keeps the reason)
    InvalidState,     // the hardware refused to run it
    Unhandled,        // an exit the core cannot handle yet
    ExitBudget,       // stopped after the exits the caller allowed (not an end: it can go on)
};

const char* guest_end_name(GuestEnd end);

// The domain a vCPU belongs to, as exit handling sees it.
struct ExitDomain {
    const cpuid::CpuidPolicy& cpuid;
    const IoPortMap& ports;
    const emulate::MmioMap& mmio;
    emulate::GuestPhysicalReader& memory;  // its RAM, for fetching instructions
    emulate::PagingFeatures paging;        // what its CPU's paging supports
    hypercall::HypercallHandlers& hypercalls;
    u16 domain_id;
    bool control_domain;
};

// What exit handling needs from the machine and from the guest's owner.
class ExitHost {
public:
    // XCR0 is not switched by VM entry or exit: the new value must be loaded now.
    virtual void load_xcr0(u64 value) = 0;
    // A host interrupt arrived while the guest ran and is still pending: take it.
    virtual void take_host_interrupts() = 0;
    // Rate-limited by the caller of this hook: the count says how many so far.
    virtual void unclaimed_io(const IoExit& io, u64 count) = 0;
    // The TSC as the guest's RDTSC would read it now.
    virtual u64 tsc() = 0;
    // The guest wrote the hypercall-page MSR (LAMINA_HYPERCALL_PAGE_MSR): fill the page it
    // names. False (#GP) for a value that names no page of its RAM.
    virtual bool install_hypercall_page(u64 msr_value) = 0;

protected:
    ~ExitHost() = default;
};

class ExitHandler {
public:
    static constexpr u64 kUnclaimedIoReported = 8;  // the first accesses, then every 4096th

    // One per vCPU: `vcpu_index` is its number in the domain (its APIC id; 0 is the bootstrap one).
    ExitHandler(const ExitDomain& domain, ExitHost& host, u32 vcpu_index = 0)
        : cpuid_(domain.cpuid), ports_(domain.ports), mmio_(domain.mmio), memory_(domain.memory),
          paging_(domain.paging), hypercalls_(domain.hypercalls), domain_id_(domain.domain_id),
          control_domain_(domain.control_domain), host_(host), vcpu_index_(vcpu_index) {}

    // Handles one exit; Running while the guest may go on.
    GuestEnd handle(Vcpu& vcpu, const ExitInfo& exit);

    u64 xcr0() const { return xcr0_; }
    u64 unclaimed_io() const { return unclaimed_io_; }
    // For a hypercall handler: what becomes of the vCPU once the call returns (Blocked: it
    // sleeps; Yielded: it lets others run; Shutdown: it is over).
    void request(GuestEnd next) { requested_ = next; }

    // Why the last BadMmio end happened.
    const emulate::MmioResult& mmio_failure() const { return mmio_failure_; }

private:
    // Each answers one kind of exit. Out of line, so that handle() stays a dispatcher that
    // saves no registers: the frame the largest of them needs would cost every exit.
    [[gnu::noinline]] GuestEnd cpuid(Vcpu& vcpu);
    [[gnu::noinline]] GuestEnd io(Vcpu& vcpu, const IoExit& io);
    [[gnu::noinline]] GuestEnd msr(Vcpu& vcpu, bool write);
    [[gnu::noinline]] GuestEnd xsetbv(Vcpu& vcpu);
    [[gnu::noinline]] GuestEnd hlt(Vcpu& vcpu);
    [[gnu::noinline]] GuestEnd stage2_fault(Vcpu& vcpu, const Stage2FaultExit& fault);
    [[gnu::noinline]] GuestEnd hypercall(Vcpu& vcpu);

    const cpuid::CpuidPolicy& cpuid_;
    const IoPortMap& ports_;
    const emulate::MmioMap& mmio_;
    emulate::GuestPhysicalReader& memory_;
    const emulate::PagingFeatures paging_;
    hypercall::HypercallHandlers& hypercalls_;
    const u16 domain_id_;
    const bool control_domain_;
    ExitHost& host_;
    const u32 vcpu_index_;
    u64 xcr0_ = cpuid::xcr0::kX87;  // the reset value
    VirtualMsrs msrs_;
    u64 unclaimed_io_ = 0;
    emulate::MmioResult mmio_failure_{};
    GuestEnd requested_ = GuestEnd::Running;
};

}  // namespace lamina
