// Self-tests of the VMX backend: hand-assembled guests in 2 MiB of guest-physical memory behind
// a 4-level EPT, run exit by exit as the core will run them, on the boot CPU and on every other
// CPU. Each test checks that the vCPU and its memory are freed to the last frame. On a machine
// without VMX they pass trivially.
#include <arch/x86_64/apic.h>
#include <arch/x86_64/interrupt_guard.h>
#include <arch/x86_64/paging/ept_format.h>
#include <arch/x86_64/paging/page_table.h>
#include <arch/x86_64/smp.h>
#include <arch/x86_64/vmx/vmx_vcpu.h>
#include <hypervisor/log.h>
#include <hypervisor/memory.h>
#include <hypervisor/stage2/scratch_guest_memory.h>
#include <hypervisor/percpu.h>
#include <hypervisor/selftest.h>
#include <hypervisor/time.h>
#include <hypervisor/virt.h>
#include <lamina/spinlock.h>
#include <lamina/string.h>
#include <arch/x86_64/registers.h>

namespace lamina {
namespace {

using namespace x86;

using selftest::Context;

constexpr u64 kCodeAddress = 0x1000;
constexpr u64 kEntryRbx = 0x5a5a0000;
constexpr u64 kEntryRsp = 0x8000;
constexpr u16 kVpid = 1;
constexpr u64 kOtherCpuTimeoutUs = 10000000;

constexpr u16 kAccessLongMode = 1u << 13;

using GuestMemory = stage2::ScratchGuestMemory;

class VcpuHandle {
public:
    explicit VcpuHandle(Vcpu* vcpu) : vcpu_(vcpu) {}
    ~VcpuHandle() {
        if (vcpu_) destroy_vmx_vcpu(vcpu_);
    }
    VcpuHandle(const VcpuHandle&) = delete;
    VcpuHandle& operator=(const VcpuHandle&) = delete;
    explicit operator bool() const { return vcpu_ != nullptr; }
    Vcpu& operator*() const { return *vcpu_; }

private:
    Vcpu* vcpu_;
};

bool vmx_machine() {
    const virt::Vendor vendor = virt::summary().vendor;
    if (vendor == virt::Vendor::Vmx) return true;
    log::info("vmx self-test: nothing to test on a machine with {}", virt::vendor_name(vendor));
    return false;
}

// Runs the guest and checks that it stopped for `reason`; the exit goes to *out.
bool run_until(Context& t, Vcpu& vcpu, ExitReason reason, const char* step, ExitInfo* out = nullptr) {
    const ExitInfo exit = vcpu.run();
    if (out) *out = exit;
    return t.expect(exit.reason == reason,
                    "{}: exit reason {} (VMX {:#x}, qualification {:#x}, {}) where {} was due", step,
                    exit.reason, exit.hardware_code, exit.qualification,
                    exit.failure ? exit.failure : "no failure", reason);
}

// Gives `scenario` a vCPU on a fresh guest space that holds `code` at kCodeAddress, with
// interrupts off as run() wants them, then checks that everything was freed.
template <typename Scenario>
void with_guest(Context& t, EntryMode mode, const u8* code, usize size, Scenario&& scenario) {
    const u64 free_before = memory::stats().free_bytes;
    {
        x86::InterruptGuard interrupts_off;
        GuestMemory memory(stage2::Stage2Format::Ept);
        if (!t.expect(memory.init(), "no memory for a 2 MiB guest")) return;
        memory.copy(kCodeAddress, code, size);
        VcpuHandle vcpu(
            create_vmx_vcpu(memory.binding(), kVpid, make_entry_state(mode, kCodeAddress, kEntryRbx, kEntryRsp)));
        if (!t.expect(static_cast<bool>(vcpu), "create_vmx_vcpu failed (see the log)")) return;
        scenario(*vcpu, memory);
    }
    const u64 free_after = memory::stats().free_bytes;
    t.expect(free_after == free_before, "{} bytes free before the guest, {} after", free_before, free_after);
}

// mov $0x40000000,%eax; cpuid; out %al,$0x80; hlt
constexpr u8 kProtectedGuest[] = {0xb8, 0x00, 0x00, 0x00, 0x40, 0x0f, 0xa2, 0xe6, 0x80, 0xf4};
constexpr u64 kProtectedHlt = kCodeAddress + 9;

void protected_mode_guest(Context& t) {
    with_guest(t, EntryMode::Protected32, kProtectedGuest, sizeof(kProtectedGuest), [&](Vcpu& vcpu, GuestMemory&) {
        if (!run_until(t, vcpu, ExitReason::Cpuid, "cpuid")) return;
        t.expect(vcpu.gpr(Gpr::Rax) == 0x40000000, "eax {:#x} at CPUID", vcpu.gpr(Gpr::Rax));
        t.expect(vcpu.gpr(Gpr::Rbx) == kEntryRbx && vcpu.gpr(Gpr::Rsp) == kEntryRsp,
                 "entry ebx {:#x} esp {:#x}", vcpu.gpr(Gpr::Rbx), vcpu.gpr(Gpr::Rsp));
        t.expect(vcpu.rip() == kCodeAddress + 5, "rip {:#x} at CPUID", vcpu.rip());
        t.expect(vcpu.control_register(ControlRegister::Cr0) == (kCr0Pe | kCr0Et | kCr0Ne) &&
                     vcpu.control_register(ControlRegister::Cr4) == 0,
                 "the guest sees cr0 {:#x} cr4 {:#x}", vcpu.control_register(ControlRegister::Cr0),
                 vcpu.control_register(ControlRegister::Cr4));
        // The CPUID answer must reach the guest: OUT then shows it.
        vcpu.set_gpr(Gpr::Rax, 0x4c414d49);
        vcpu.set_gpr(Gpr::Rbx, 0x6e61);
        vcpu.set_gpr(Gpr::Rcx, 0);
        vcpu.set_gpr(Gpr::Rdx, 0);
        vcpu.advance_rip();

        ExitInfo out;
        if (!run_until(t, vcpu, ExitReason::Io, "out", &out)) return;
        t.expect(out.io.port == 0x80 && !out.io.in && out.io.size == 1 && !out.io.string && !out.io.rep,
                 "I/O exit port {:#x} in {} size {} string {} rep {}", out.io.port, out.io.in, out.io.size,
                 out.io.string, out.io.rep);
        t.expect(vcpu.gpr(Gpr::Rax) == 0x4c414d49 && vcpu.gpr(Gpr::Rbx) == 0x6e61,
                 "eax {:#x} ebx {:#x} after CPUID", vcpu.gpr(Gpr::Rax), vcpu.gpr(Gpr::Rbx));
        vcpu.advance_rip();

        if (!run_until(t, vcpu, ExitReason::Hlt, "hlt")) return;
        t.expect(vcpu.rip() == kProtectedHlt, "rip {:#x} at HLT", vcpu.rip());
    });
}

LAMINA_SELFTEST("vmx: a 32-bit protected-mode guest exits on CPUID, OUT and HLT") {
    if (vmx_machine()) protected_mode_guest(t);
}

// 16-bit code: mov $0x1234,%ax; out %ax,$0x80; hlt
constexpr u8 kRealModeGuest[] = {0xb8, 0x34, 0x12, 0xe7, 0x80, 0xf4};

LAMINA_SELFTEST("vmx: a real-mode guest exits on a 16-bit OUT and HLT") {
    if (!vmx_machine()) return;
    with_guest(t, EntryMode::Real, kRealModeGuest, sizeof(kRealModeGuest), [&](Vcpu& vcpu, GuestMemory&) {
        const Segment cs = vcpu.segment(SegmentRegister::Cs);
        t.expect(cs.selector == kCodeAddress >> 4 && cs.base == kCodeAddress && vcpu.rip() == 0,
                 "entry cs {:#x} base {:#x} ip {:#x}", cs.selector, cs.base, vcpu.rip());
        ExitInfo out;
        if (!run_until(t, vcpu, ExitReason::Io, "out", &out)) return;
        t.expect(out.io.port == 0x80 && !out.io.in && out.io.size == 2, "I/O exit port {:#x} in {} size {}",
                 out.io.port, out.io.in, out.io.size);
        t.expect((vcpu.gpr(Gpr::Rax) & 0xffff) == 0x1234, "ax {:#x} at OUT", vcpu.gpr(Gpr::Rax));
        vcpu.advance_rip();
        if (!run_until(t, vcpu, ExitReason::Hlt, "hlt")) return;
        t.expect(vcpu.rip() == 5, "ip {:#x} at HLT", vcpu.rip());
    });
}

// mov %cr0,%eax; and $~0x20,%eax (clear NE); mov %eax,%cr0; mov %cr0,%ebx; mov %cr4,%ecx; hlt
constexpr u8 kOwnedBitsGuest[] = {0x0f, 0x20, 0xc0, 0x83, 0xe0, 0xdf, 0x0f, 0x22, 0xc0,
                                  0x0f, 0x20, 0xc3, 0x0f, 0x20, 0xe1, 0xf4};

LAMINA_SELFTEST("vmx: the guest sees its own CR0.NE and no CR4.VMXE; the backend completes the write") {
    if (!vmx_machine()) return;
    with_guest(t, EntryMode::Protected32, kOwnedBitsGuest, sizeof(kOwnedBitsGuest), [&](Vcpu& vcpu, GuestMemory&) {
        if (!run_until(t, vcpu, ExitReason::Hlt, "hlt after clearing CR0.NE")) return;
        constexpr u64 kWithoutNe = kCr0Pe | kCr0Et;
        t.expect(vcpu.gpr(Gpr::Rbx) == kWithoutNe && vcpu.control_register(ControlRegister::Cr0) == kWithoutNe,
                 "the guest reads cr0 {:#x}, its view is {:#x}", vcpu.gpr(Gpr::Rbx),
                 vcpu.control_register(ControlRegister::Cr0));
        t.expect(vcpu.gpr(Gpr::Rcx) == 0, "the guest reads cr4 {:#x}", vcpu.gpr(Gpr::Rcx));
    });
}

// 16-bit code: mov %cr4,%eax; or $0x2000,%eax (VMXE); mov %eax,%cr4; hlt. The #GP handler (IVT
// entry 13 -> 0x200:0) halts.
constexpr u8 kVmxeGuest[] = {0x0f, 0x20, 0xe0, 0x66, 0x0d, 0x00, 0x20, 0x00, 0x00, 0x0f, 0x22, 0xe0, 0xf4};
constexpr u64 kGpHandlerSegment = 0x200;
constexpr u8 kHlt = 0xf4;

LAMINA_SELFTEST("vmx: setting CR4.VMXE raises #GP in the guest") {
    if (!vmx_machine()) return;
    with_guest(t, EntryMode::Real, kVmxeGuest, sizeof(kVmxeGuest), [&](Vcpu& vcpu, GuestMemory& memory) {
        const u32 gp_vector_entry = kGpHandlerSegment << 16;  // segment:offset 0x200:0
        memory.copy(13 * 4, &gp_vector_entry, sizeof(gp_vector_entry));
        memory.copy(kGpHandlerSegment << 4, &kHlt, 1);
        if (!run_until(t, vcpu, ExitReason::Hlt, "hlt in the #GP handler")) return;
        const Segment cs = vcpu.segment(SegmentRegister::Cs);
        t.expect(cs.selector == kGpHandlerSegment && vcpu.rip() == 0,
                 "halted at {:#x}:{:#x}, not in the #GP handler", cs.selector, vcpu.rip());
        t.expect(vcpu.control_register(ControlRegister::Cr4) == 0, "cr4 {:#x} after the refused write",
                 vcpu.control_register(ControlRegister::Cr4));
    });
}

// From the 32-bit entry to 64-bit mode the way a PVH kernel goes: CR4.PAE, CR3, EFER.LME
// (intercepted), CR0.PG, a far jump to a 64-bit code segment, two HLTs.
//   mov %cr4,%eax; or $0x20,%eax; mov %eax,%cr4; mov $0x10000,%eax; mov %eax,%cr3
//   mov $0xc0000080,%ecx; rdmsr; or $0x100,%eax; wrmsr
//   mov %cr0,%eax; or $0x80000000,%eax; and $<ne_mask>,%eax; mov %eax,%cr0
//   ljmp $0x18,$0x1034; (0x1034, 64-bit) hlt; hlt
constexpr u64 kPml4 = 0x10000;
constexpr u64 kLongModeHlt = kCodeAddress + 0x34;
constexpr u64 kCode64Selector = 0x18;
constexpr usize kNeMaskOffset = 41;
constexpr u8 kLongModeGuest[] = {
    0x0f, 0x20, 0xe0, 0x83, 0xc8, 0x20, 0x0f, 0x22, 0xe0, 0xb8, 0x00, 0x00, 0x01, 0x00, 0x0f, 0x22, 0xd8,
    0xb9, 0x80, 0x00, 0x00, 0xc0, 0x0f, 0x32, 0x0d, 0x00, 0x01, 0x00, 0x00, 0x0f, 0x30,
    0x0f, 0x20, 0xc0, 0x0d, 0x00, 0x00, 0x00, 0x80, 0x83, 0xe0, 0xff, 0x0f, 0x22, 0xc0,
    0xea, 0x34, 0x10, 0x00, 0x00, 0x18, 0x00, 0xf4, 0xf4};
static_assert(sizeof(kLongModeGuest) == 0x34 + 2);

// The GDT at guest-physical 0 (GDTR after reset: base 0, limit 0xffff) and identity-mapping page
// tables for the first 2 MiB.
void write_long_mode_tables(GuestMemory& memory) {
    constexpr u64 kPresentWritable = 3;
    constexpr u64 kLargePage = 1u << 7;
    memory.write64(kCode64Selector, 0x00af9b000000ffff);  // 64-bit code, DPL 0
    memory.write64(kPml4, (kPml4 + 0x1000) | kPresentWritable);
    memory.write64(kPml4 + 0x1000, (kPml4 + 0x2000) | kPresentWritable);
    memory.write64(kPml4 + 0x2000, 0 | kPresentWritable | kLargePage);
}

void long_mode_guest(Context& t, bool clear_ne) {
    u8 code[sizeof(kLongModeGuest)];
    str::copy_bytes(code, kLongModeGuest, sizeof(code));
    code[kNeMaskOffset] = clear_ne ? static_cast<u8>(~kCr0Ne) : 0xff;
    with_guest(t, EntryMode::Protected32, code, sizeof(code), [&](Vcpu& vcpu, GuestMemory& memory) {
        write_long_mode_tables(memory);
        if (!run_until(t, vcpu, ExitReason::MsrRead, "rdmsr EFER")) return;
        t.expect(vcpu.gpr(Gpr::Rcx) == 0xc0000080, "rdmsr of {:#x}", vcpu.gpr(Gpr::Rcx));
        vcpu.set_gpr(Gpr::Rax, vcpu.efer() & 0xffffffff);
        vcpu.set_gpr(Gpr::Rdx, vcpu.efer() >> 32);
        vcpu.advance_rip();
        if (!run_until(t, vcpu, ExitReason::MsrWrite, "wrmsr EFER")) return;
        vcpu.set_efer((vcpu.gpr(Gpr::Rdx) << 32) | (vcpu.gpr(Gpr::Rax) & 0xffffffff));
        vcpu.advance_rip();

        if (!run_until(t, vcpu, ExitReason::Hlt, "hlt in 64-bit mode")) return;
        const Segment cs = vcpu.segment(SegmentRegister::Cs);
        const u64 cr0 = vcpu.control_register(ControlRegister::Cr0);
        t.expect(vcpu.rip() == kLongModeHlt && cs.selector == kCode64Selector && (cs.attributes & kAccessLongMode),
                 "halted at {:#x}:{:#x} (cs access rights {:#x})", cs.selector, vcpu.rip(), cs.attributes);
        t.expect((vcpu.efer() & (kEferLme | kEferLma)) == (kEferLme | kEferLma), "efer {:#x} in 64-bit mode",
                 vcpu.efer());
        t.expect((cr0 & kCr0Pg) && ((cr0 & kCr0Ne) != 0) == !clear_ne, "cr0 {:#x} in 64-bit mode", cr0);
        // Entering again in 64-bit mode needs the "IA-32e mode guest" control the exit left.
        vcpu.advance_rip();
        if (!run_until(t, vcpu, ExitReason::Hlt, "second hlt in 64-bit mode")) return;
        t.expect(vcpu.rip() == kLongModeHlt + 1, "second hlt at {:#x}", vcpu.rip());
    });
}

LAMINA_SELFTEST("vmx: the guest enters long mode (CR0.PG set by the CPU)") {
    if (vmx_machine()) long_mode_guest(t, false);
}

LAMINA_SELFTEST("vmx: the guest enters long mode (CR0.PG set by the backend, with CR0.NE)") {
    if (vmx_machine()) long_mode_guest(t, true);
}

LAMINA_SELFTEST("vmx: a bad guest state is diagnosed, not run, and can be repaired") {
    if (!vmx_machine()) return;
    with_guest(t, EntryMode::Protected32, &kHlt, 1, [&](Vcpu& vcpu, GuestMemory&) {
        const Segment tr = vcpu.segment(SegmentRegister::Tr);
        Segment available_tss = tr;
        available_tss.attributes = (tr.attributes & ~0xf) | 0x9;  // TR must hold a busy TSS
        vcpu.set_segment(SegmentRegister::Tr, available_tss);
        ExitInfo failed;
        if (!run_until(t, vcpu, ExitReason::InvalidState, "entry with an available TSS", &failed)) return;
        t.expect(failed.failure != nullptr && failed.hardware_code == 33,
                 "failure \"{}\", exit reason {}", failed.failure ? failed.failure : "", failed.hardware_code);
        vcpu.set_segment(SegmentRegister::Tr, tr);
        if (!run_until(t, vcpu, ExitReason::Hlt, "hlt after the repair")) return;
        t.expect(vcpu.rip() == kCodeAddress, "rip {:#x} at HLT", vcpu.rip());
    });
}

// vmcall; mov 0x300000,%eax (2 MiB and above is not guest memory)
constexpr u8 kOutsideMemoryGuest[] = {0x0f, 0x01, 0xc1, 0xa1, 0x00, 0x00, 0x30, 0x00};
constexpr u64 kUnmappedAddress = 0x300000;

LAMINA_SELFTEST("vmx: VMCALL is a hypercall; reads and fetches outside guest memory are stage-2 faults") {
    if (!vmx_machine()) return;
    const auto scenario = [&](Vcpu& vcpu, GuestMemory&) {
        if (!run_until(t, vcpu, ExitReason::Hypercall, "vmcall")) return;
        vcpu.advance_rip();
        ExitInfo fault;
        if (!run_until(t, vcpu, ExitReason::Stage2Fault, "read outside memory", &fault)) return;
        t.expect(fault.stage2.guest_physical == kUnmappedAddress && fault.stage2.read && !fault.stage2.write &&
                     !fault.stage2.execute && !fault.stage2.misconfigured && vcpu.rip() == kCodeAddress + 3,
                 "read fault at {:#x} (r {} w {} x {} misconfigured {}) from rip {:#x}",
                 fault.stage2.guest_physical, fault.stage2.read, fault.stage2.write, fault.stage2.execute,
                 fault.stage2.misconfigured, vcpu.rip());
        vcpu.set_rip(kUnmappedAddress);
        if (!run_until(t, vcpu, ExitReason::Stage2Fault, "fetch outside memory", &fault)) return;
        t.expect(fault.stage2.guest_physical == kUnmappedAddress && fault.stage2.execute && !fault.stage2.write,
                 "fetch fault at {:#x} (r {} w {} x {})", fault.stage2.guest_physical, fault.stage2.read,
                 fault.stage2.write, fault.stage2.execute);
    };
    with_guest(t, EntryMode::Protected32, kOutsideMemoryGuest, sizeof(kOutsideMemoryGuest), scenario);
}

// sti; cli; jmp . : the guest spins with interrupts off and never stops by itself. Host
// interrupts exit whatever the guest's RFLAGS.IF (SDM Vol. 3C "Changes to Event Blocking"). The
// sti; cli is for Bochs 2.7, which re-evaluates interrupt masking when IF changes but not on VM
// entry: entered with IF=0 on both sides, the guest would never see the host's interrupt exit.
constexpr u8 kSpinningGuest[] = {0xfb, 0xfa, 0xeb, 0xfe};
constexpr u64 kTimerNs = 1000000;
constexpr u64 kInterruptWaitNs = 1000000000;

LAMINA_SELFTEST("vmx: a host interrupt stops the guest and stays pending until the host takes it") {
    if (!vmx_machine()) return;
    with_guest(t, EntryMode::Protected32, kSpinningGuest, sizeof(kSpinningGuest), [&](Vcpu& vcpu, GuestMemory&) {
        PerCpu* cpu = this_cpu();
        const u32 ticks_before = cpu->timer_ticks.load();
        apic::arm_timer(kTimerNs);
        if (!run_until(t, vcpu, ExitReason::ExternalInterrupt, "timer interrupt")) return;
        t.expect(cpu->timer_ticks.load() == ticks_before, "the timer interrupt was taken with interrupts off");
        // Emulators deliver interrupts between blocks of instructions: wait, not just sti; cli.
        const u64 start = time::now_ns();
        x86::enable_interrupts();
        while (cpu->timer_ticks.load() == ticks_before && time::now_ns() - start < kInterruptWaitNs) x86::pause();
        x86::disable_interrupts();
        t.expect(cpu->timer_ticks.load() != ticks_before, "the timer interrupt was lost");
    });
}

// The same guest on every other CPU (host state is per CPU: GS base, TSS, the VMCS itself), one
// CPU at a time so that each can check that its memory came back.
SpinLock other_cpus_lock;
Context other_cpus_failure;
u32 other_cpus_failed_on;
u32 other_cpus_ran;

void protected_mode_guest_on_this_cpu() {
    LockGuard<SpinLock> guard(other_cpus_lock);
    Context t;
    protected_mode_guest(t);
    ++other_cpus_ran;
    if (t.failed() && !other_cpus_failure.failed()) {
        other_cpus_failure = t;
        other_cpus_failed_on = this_cpu()->index;
    }
}

LAMINA_SELFTEST("vmx: every other CPU runs a guest of its own") {
    if (!vmx_machine()) return;
    other_cpus_failure = Context();
    other_cpus_ran = 0;
    const bool answered = smp::run_on_others(protected_mode_guest_on_this_cpu, kOtherCpuTimeoutUs);
    t.expect(answered && other_cpus_ran == smp::online_count() - 1, "{} of {} other CPUs ran the guest",
             other_cpus_ran, smp::online_count() - 1);
    t.expect(!other_cpus_failure.failed(), "cpu{}: {}", other_cpus_failed_on, other_cpus_failure.reason());
}

}  // namespace
}  // namespace lamina
