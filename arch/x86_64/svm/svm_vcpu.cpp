// The SVM vCPU: a VMCB with nested paging, the intercepts that keep the guest inside its
// sandbox, the exit decoder and the diagnosis of a VMCB that VMRUN refuses (AMD APM Vol. 2
// chapter 15).
#include <arch/x86_64/svm/svm_vcpu.h>
#include <arch/x86_64/registers.h>

#include <arch/x86_64/cpu.h>
#include <arch/x86_64/guest_msrs.h>
#include <arch/x86_64/svm/svm_capabilities.h>
#include <arch/x86_64/svm/vmcb.h>
#include <hypervisor/heap.h>
#include <hypervisor/log.h>
#include <hypervisor/memory.h>
#include <hypervisor/percpu.h>
#include <lamina/assert.h>
#include <lamina/spinlock.h>
#include <lamina/string.h>

extern "C" void svm_run_guest(lamina::u64 vmcb_phys, lamina::u64 host_area_phys, lamina::u64* gprs);

namespace lamina::svm {
namespace {

using namespace x86;

constexpr usize kIopmFrames = 3;   // 12 KiB (15.10.1)
constexpr usize kMsrpmFrames = 2;  // 8 KiB (15.11)

// The MSRPM (15.11): two bits per MSR (read, then write intercept) for three ranges of 8192
// MSRs, 2 KiB each.
constexpr u32 kMsrpmRanges[] = {0x00000000, 0xc0000000, 0xc0010000};
constexpr u32 kMsrpmRangeSize = 0x2000;
constexpr u32 kMsrpmRangeBytes = 0x800;

// Lets the guest read and write `msr` without an exit.
void pass_through_msr(u8* msrpm, u32 msr) {
    for (u32 range = 0; range < sizeof(kMsrpmRanges) / sizeof(u32); ++range) {
        const u32 index = msr - kMsrpmRanges[range];
        if (msr < kMsrpmRanges[range] || index >= kMsrpmRangeSize) continue;
        msrpm[range * kMsrpmRangeBytes + index / 4] &= static_cast<u8>(~(3u << (2 * (index % 4))));
        return;
    }
    LAMINA_ASSERT(false);
}

constexpr u64 kDr6Reset = 0xffff0ff0;
constexpr u64 kDr7Reset = 0x400;
constexpr u64 kRealModeLimit = 1 * MiB;  // CS:IP reaches no further
constexpr u64 kPatPowerOn = 0x0007040600070406;  // APM Vol. 2 7.8.2
// Bits above the largest MAXPHYADDR, which no CR3 may set (15.5.1).
constexpr u64 kCr3AboveMaxPhysical = ~u64{0} << 52;

// Segment attributes, neutral (VMX) layout.
constexpr u16 kSegmentPresent = 1u << 7;
constexpr u16 kSegmentCodeOrData = 1u << 4;
constexpr u16 kSegmentDplShift = 5;
constexpr u16 kSegmentLong = 1u << 13;
constexpr u16 kSegmentDefaultBig = 1u << 14;
constexpr u16 kSegmentGranularity = 1u << 15;
constexpr u16 kTypeDataReadWriteAccessed = 0x3;
constexpr u16 kTypeCodeReadAccessed = 0xb;
constexpr u16 kTypeLdt = 0x2;
constexpr u16 kTypeBusyTss32 = 0xb;
// The flat protected-mode selectors: the usual GDT layout (null, code, data).
constexpr u16 kFlatCodeSelector = 0x08;
constexpr u16 kFlatDataSelector = 0x10;

// CPUID Fn8000_000A reads the same on every CPU: read once, by the first vCPU created.
SpinLock capabilities_lock;
Atomic<bool> capabilities_read;
Capabilities cached_capabilities;

const Capabilities& capabilities() {
    if (!capabilities_read.load(MemoryOrder::Acquire)) {
        LockGuard guard(capabilities_lock);
        if (!capabilities_read.load(MemoryOrder::Relaxed)) {
            read_capabilities(cached_capabilities);
            capabilities_read.store(true, MemoryOrder::Release);
        }
    }
    return cached_capabilities;
}

VmcbSegment to_vmcb(const Segment& s) {
    return {s.selector, convert_segment_attributes(s.attributes), s.limit, s.base};
}
Segment from_vmcb(const VmcbSegment& s) {
    return {s.selector, s.base, s.limit, convert_segment_attributes(s.attributes)};
}

DescriptorTable descriptor_table(const VmcbSegment& s) { return {s.base, static_cast<u16>(s.limit)}; }

Segment real_mode_segment(u16 selector, u16 type) {
    return {selector, u64{selector} << 4, 0xffff,
            static_cast<u16>(type | kSegmentCodeOrData | kSegmentPresent)};
}
Segment flat_segment(u16 selector, u16 type) {
    return {selector, 0, 0xffffffff,
            static_cast<u16>(type | kSegmentCodeOrData | kSegmentPresent | kSegmentDefaultBig |
                             kSegmentGranularity)};
}
// 64-bit code: L instead of D/B, which VMRUN refuses together (15.5.1).
Segment flat_code64_segment(u16 selector) {
    return {selector, 0, 0xffffffff,
            static_cast<u16>(kTypeCodeReadAccessed | kSegmentCodeOrData | kSegmentPresent | kSegmentLong |
                             kSegmentGranularity)};
}
Segment system_segment(u16 type) { return {0, 0, 0xffff, static_cast<u16>(type | kSegmentPresent)}; }

bool exception_has_error_code(u8 vector) {
    return vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21 ||
           vector == 29 || vector == 30;
}

// The rule of VMRUN (15.5.1) or of event injection (15.20) this VMCB breaks, or nullptr.
// Must-be-zero bits that depend on the CPU model's features are left to VMRUN.
const char* broken_vmrun_rule(const Vmcb& vmcb) {
    const VmcbSave& s = vmcb.save;
    const VmcbControl& c = vmcb.control;
    const bool long_mode_paging = (s.efer & kEferLme) && (s.cr0 & kCr0Pg);
    const u16 cs = convert_segment_attributes(s.cs.attributes);
    if (!(s.efer & x86::kEferSvme)) return "guest EFER.SVME is clear";
    if (s.efer >> 32) return "guest EFER bits 63:32 are set";
    if ((s.cr0 & kCr0Nw) && !(s.cr0 & kCr0Cd)) return "guest CR0.NW is set while CR0.CD is clear";
    if (s.cr0 >> 32) return "guest CR0 bits 63:32 are set";
    if ((s.cr0 & kCr0Pg) && !(s.cr0 & kCr0Pe)) return "guest CR0.PG is set while CR0.PE is clear";
    if (s.cr3 & kCr3AboveMaxPhysical) return "guest CR3 sets bits above MAXPHYADDR";
    if (s.cr4 >> 32) return "guest CR4 bits 63:32 are set";
    if (s.dr6 >> 32) return "guest DR6 bits 63:32 are set";
    if (s.dr7 >> 32) return "guest DR7 bits 63:32 are set";
    if (long_mode_paging && !(s.cr4 & kCr4Pae))
        return "guest long mode (EFER.LME, CR0.PG) without CR4.PAE";
    if (long_mode_paging && (s.cr4 & kCr4Pae) && (cs & kSegmentLong) && (cs & kSegmentDefaultBig))
        return "guest long mode with CS.L and CS.D both set";
    if (!(c.intercept4 & intercept4::kVmrun)) return "the VMRUN intercept is clear";
    if (c.asid == 0) return "ASID 0 (the host's)";
    if (c.event_injection & event::kValid) {
        const u64 type = c.event_injection & event::kTypeMask;
        const u64 vector = c.event_injection & event::kVectorMask;
        if (type == event::kTypeException && (vector == 2 || vector > 31))
            return "EVENTINJ: an exception with vector 2 or above 31";
        if (type != event::kTypeInterrupt && type != event::kTypeNmi &&
            type != event::kTypeException && type != event::kTypeSoftwareInterrupt)
            return "EVENTINJ: a reserved event type";
    }
    return nullptr;
}

// run() checks the other rules before VMRUN.
constexpr const char* kRefusedByVmrun =
    "VMRUN refused the VMCB (VMEXIT_INVALID): a must-be-zero bit of EFER, CR3 or CR4 that this CPU "
    "reserves?";

// hardware_code is VMEXIT_INVALID also when run() refuses before VMRUN: what VMRUN would say.
ExitInfo invalid_state(const char* failure) {
    ExitInfo info{};
    info.reason = ExitReason::InvalidState;
    info.hardware_code = exit_code::kInvalid;
    info.failure = failure;
    return info;
}

void log_segment(const char* name, const VmcbSegment& s) {
    log::error("svm:   {:<4} sel {:#06x} attrib {:#05x} limit {:#010x} base {:#x}", name, s.selector,
               s.attributes, s.limit, s.base);
}

// What VMRUN refused, in the terms of the APM: the whole guest state and the controls it checks.
void log_vmcb(const Vmcb& vmcb) {
    const VmcbSave& s = vmcb.save;
    const VmcbControl& c = vmcb.control;
    log::error("svm:   CR0 {:#x} CR3 {:#x} CR4 {:#x} EFER {:#x} CPL {}", s.cr0, s.cr3, s.cr4, s.efer,
               s.cpl);
    log::error("svm:   RIP {:#x} RSP {:#x} RFLAGS {:#x} DR6 {:#x} DR7 {:#x}", s.rip, s.rsp, s.rflags,
               s.dr6, s.dr7);
    log_segment("ES", s.es);
    log_segment("CS", s.cs);
    log_segment("SS", s.ss);
    log_segment("DS", s.ds);
    log_segment("FS", s.fs);
    log_segment("GS", s.gs);
    log_segment("LDTR", s.ldtr);
    log_segment("TR", s.tr);
    log::error("svm:   GDTR base {:#x} limit {:#x}, IDTR base {:#x} limit {:#x}", s.gdtr.base,
               s.gdtr.limit, s.idtr.base, s.idtr.limit);
    log::error("svm:   ASID {} TLB_CONTROL {} nested {:#x} nCR3 {:#x} G_PAT {:#x} EVENTINJ {:#x}",
               c.asid, c.tlb_control, c.nested_control, c.nested_cr3, s.g_pat, c.event_injection);
    log::error("svm:   intercepts CR {:#06x}/{:#06x} DR {:#06x}/{:#06x} exceptions {:#010x} "
               "vectors {:#010x} {:#010x} {:#010x}, IOPM {:#x} MSRPM {:#x}",
               c.intercept_cr_read, c.intercept_cr_write, c.intercept_dr_read, c.intercept_dr_write,
               c.intercept_exceptions, c.intercept3, c.intercept4, c.intercept5, c.iopm_base,
               c.msrpm_base);
}

// The VMCB field of a segment register, const or not with the save area.
template <typename Save>
auto& segment_field(Save& save, SegmentRegister s) {
    switch (s) {
        case SegmentRegister::Es: return save.es;
        case SegmentRegister::Cs: return save.cs;
        case SegmentRegister::Ss: return save.ss;
        case SegmentRegister::Ds: return save.ds;
        case SegmentRegister::Fs: return save.fs;
        case SegmentRegister::Gs: return save.gs;
        case SegmentRegister::Ldtr: return save.ldtr;
        case SegmentRegister::Tr: return save.tr;
    }
    __builtin_unreachable();
}

// Frames of one vCPU: the VMCB, the area VMSAVE keeps the host's state in while the guest runs,
// and the permission maps (every port exits; every MSR but the guest-owned ones).
struct Frames {
    u64 vmcb = 0;
    u64 host_area = 0;
    u64 iopm = 0;
    u64 msrpm = 0;

    bool allocate() {
        vmcb = memory::allocate_frames(1);
        host_area = memory::allocate_frames(1);
        iopm = memory::allocate_frames(kIopmFrames);
        msrpm = memory::allocate_frames(kMsrpmFrames);
        if (!vmcb || !host_area || !iopm || !msrpm) return false;
        str::fill_bytes(memory::phys_to_virt(iopm), 0xff, kIopmFrames * 4 * KiB);
        auto* map = static_cast<u8*>(memory::phys_to_virt(msrpm));
        str::fill_bytes(map, 0xff, kMsrpmFrames * 4 * KiB);
        for (u32 msr : kGuestOwnedMsrs) pass_through_msr(map, msr);
        return true;
    }
    void free() {
        if (vmcb) memory::free_frames(vmcb);
        if (host_area) memory::free_frames(host_area);
        if (iopm) memory::free_frames(iopm, kIopmFrames);
        if (msrpm) memory::free_frames(msrpm, kMsrpmFrames);
        *this = {};
    }
};

class SvmVcpu final : public Vcpu {
public:
    SvmVcpu(const Frames& frames, const Stage2Binding& stage2, u16 asid, const EntryState& entry,
            const Capabilities& caps)
        : frames_(frames), stage2_generation_(stage2.generation),
          flushed_generation_(stage2.generation->load(MemoryOrder::Acquire)), vmcb_(*static_cast<Vmcb*>(memory::phys_to_virt(frames.vmcb))),
          nrip_save_(caps.nrip_save),
          // QEMU lacks flush-by-ASID: it flushes everything instead.
          tlb_flush_(caps.flush_by_asid ? tlb_control::kFlushAsid : tlb_control::kFlushAll),
          all_clean_(caps.vmcb_clean ? clean::kAll : 0) {
        init_controls(stage2.root, asid);
        init_guest_state(entry);
    }
    ~SvmVcpu() { frames_.free(); }
    SvmVcpu(const SvmVcpu&) = delete;
    SvmVcpu& operator=(const SvmVcpu&) = delete;

    ExitInfo run() override;

    u64 rip() const override { return vmcb_.save.rip; }
    void set_rip(u64 rip) override { vmcb_.save.rip = rip; }
    u64 rflags() const override { return vmcb_.save.rflags; }
    void set_rflags(u64 rflags) override { vmcb_.save.rflags = rflags; }
    u64 control_register(ControlRegister cr) const override;
    void set_control_register(ControlRegister cr, u64 value) override;
    // VMRUN needs EFER.SVME in the guest's EFER (15.5.1); the guest never sees it.
    u64 efer() const override { return vmcb_.save.efer & ~x86::kEferSvme; }
    void set_efer(u64 efer) override;
    Segment segment(SegmentRegister s) const override { return from_vmcb(segment_field(vmcb_.save, s)); }
    void set_segment(SegmentRegister s, const Segment& value) override;
    DescriptorTable gdtr() const override { return descriptor_table(vmcb_.save.gdtr); }
    DescriptorTable idtr() const override { return descriptor_table(vmcb_.save.idtr); }
    // The VMCB keeps the CPL itself (APM Vol. 2 15.5.1); L is bit 9 of its attribute layout.
    ExecutionMode execution_mode() const override {
        return {vmcb_.save.cpl, (vmcb_.save.efer & kEferLma) && (vmcb_.save.cs.attributes & kVmcbAttributeLong)};
    }

    void advance_rip() override;
    void inject_exception(u8 vector, bool has_error_code, u32 error_code) override;
    bool can_inject_interrupt() const override;
    void inject_interrupt(u8 vector) override;
    void request_interrupt_window(bool on) override;
    u64 pat() const override { return vmcb_.save.g_pat; }
    void set_pat(u64 pat) override {
        vmcb_.save.g_pat = pat;
        dirty_ |= clean::kNestedPaging;
    }
    u64 flushed_stage2_generation() const override { return flushed_generation_; }
    // Nothing stays in a CPU between VMRUNs: run() on another CPU handles the move
    // (prepare_unusual_entry).
    void release() override {}

private:
    static constexpr u32 kNoCpu = ~u32{0};

    void init_controls(u64 ncr3_root_phys, u16 asid);
    void init_guest_state(const EntryState& entry);
    const char* prepare_unusual_entry(u32 cpu);
    void complete_exit();
    void reinject_interrupted_event();
    ExitInfo decode_exit();
    void refuse_entry(const char* rule) const;
    ExitInfo refused_by_vmrun();
    void warn_cannot_advance() const;

    Frames frames_;
    const Atomic<u64>* stage2_generation_;
    u64 flushed_generation_;
    Vmcb& vmcb_;
    // The capabilities the exit path needs, copied at creation: no lookup per exit.
    const bool nrip_save_;
    const u8 tlb_flush_;
    // Without the VMCB-clean feature the bits must stay 0 (QEMU and Bochs have none).
    const u32 all_clean_;
    // What run() must look at before the next VMRUN: the VMCB groups changed since the last
    // one (their clean bits must be 0, 15.15.3), an event to inject, a refused VMCB.
    static constexpr u32 kInjection = 1u << 30;
    static constexpr u32 kRefused = 1u << 31;  // by VMRUN: this vCPU never enters again
    static_assert(((kInjection | kRefused) & clean::kAll) == 0, "no clean bit");
    u32 dirty_ = clean::kAll;
    bool flush_tlb_ = true;
    u32 last_cpu_ = kNoCpu;
    // Where advance_rip() takes the guest after the last exit; 0 when it was no instruction's.
    u64 next_rip_ = 0;
};

void SvmVcpu::init_controls(u64 ncr3_root_phys, u16 asid) {
    VmcbControl& c = vmcb_.control;
    c.intercept3 = intercept3::kIntr | intercept3::kNmi | intercept3::kCpuid | intercept3::kHlt |
                   intercept3::kInvlpga | intercept3::kIoio | intercept3::kMsr | intercept3::kShutdown;
    // VMRUN must be intercepted (15.5.1); the rest keep SVM itself away from the guest.
    c.intercept4 = intercept4::kVmrun | intercept4::kVmmcall | intercept4::kVmload |
                   intercept4::kVmsave | intercept4::kStgi | intercept4::kClgi | intercept4::kSkinit |
                   intercept4::kXsetbv;
    c.iopm_base = frames_.iopm;
    c.msrpm_base = frames_.msrpm;
    c.asid = asid;
    // Host interrupts are masked by the host's RFLAGS.IF, never by the guest's (15.21.1).
    c.virtual_interrupt = kVintrMasking;
    c.nested_control = kNestedPagingEnable;
    c.nested_cr3 = ncr3_root_phys;
}

void SvmVcpu::init_guest_state(const EntryState& entry) {
    VmcbSave& s = vmcb_.save;
    const bool real = entry.mode == EntryMode::Real;
    const bool long64 = entry.mode == EntryMode::Long64;
    const u16 code_selector = real ? static_cast<u16>(entry.rip >> 4) : kFlatCodeSelector;
    const Segment code = real     ? real_mode_segment(code_selector, kTypeCodeReadAccessed)
                         : long64 ? flat_code64_segment(code_selector)
                                  : flat_segment(code_selector, kTypeCodeReadAccessed);
    const Segment data = real ? real_mode_segment(0, kTypeDataReadWriteAccessed)
                              : flat_segment(kFlatDataSelector, kTypeDataReadWriteAccessed);
    s.cs = to_vmcb(code);
    s.es = s.ss = s.ds = s.fs = s.gs = to_vmcb(data);
    s.ldtr = to_vmcb(system_segment(kTypeLdt));
    // Type 11: the busy 32-bit TSS, and in long mode the busy 64-bit one.
    s.tr = to_vmcb(system_segment(kTypeBusyTss32));
    s.gdtr.limit = s.idtr.limit = 0xffff;
    s.cpl = 0;
    s.rip = real ? entry.rip & 0xf : entry.rip;
    // Long64 starts with the entry's paging (ET reads as 1 whatever is written, APM Vol. 2
    // 3.1.1); set_efer sets LMA from LME and PG, as the CPU would.
    s.cr0 = long64 ? entry.cr0 | kCr0Et : real ? kCr0Et : kCr0Et | kCr0Pe;
    s.cr3 = entry.cr3;
    s.cr4 = entry.cr4;
    set_efer(entry.efer);
    s.rflags = entry.rflags;
    s.dr6 = kDr6Reset;
    s.dr7 = kDr7Reset;
    s.g_pat = kPatPowerOn;
    // RAX and RSP reach the VMCB from these before each VMRUN.
    str::copy_bytes(gprs_, entry.gprs, sizeof gprs_);
}

void SvmVcpu::set_segment(SegmentRegister s, const Segment& value) {
    segment_field(vmcb_.save, s) = to_vmcb(value);
    switch (s) {
        // FS, GS, LDTR and TR reach the CPU through VMLOAD on every entry: no clean bit.
        case SegmentRegister::Fs:
        case SegmentRegister::Gs:
        case SegmentRegister::Ldtr:
        case SegmentRegister::Tr: return;
        // Outside real mode the CPU takes the CPL from the VMCB, not from SS (15.5.1).
        case SegmentRegister::Ss: vmcb_.save.cpl = (value.attributes >> kSegmentDplShift) & 3; break;
        case SegmentRegister::Es:
        case SegmentRegister::Cs:
        case SegmentRegister::Ds: break;
    }
    dirty_ |= clean::kSeg;
}

u64 SvmVcpu::control_register(ControlRegister cr) const {
    const VmcbSave& s = vmcb_.save;
    switch (cr) {
        case ControlRegister::Cr0: return s.cr0;
        case ControlRegister::Cr2: return s.cr2;
        case ControlRegister::Cr3: return s.cr3;
        case ControlRegister::Cr4: return s.cr4;
        // With V_INTR_MASKING the guest's CR8 is the virtual TPR (15.21.2).
        case ControlRegister::Cr8: return vmcb_.control.virtual_interrupt & kVintrTprMask;
    }
    return 0;
}

void SvmVcpu::set_control_register(ControlRegister cr, u64 value) {
    VmcbSave& s = vmcb_.save;
    switch (cr) {
        case ControlRegister::Cr2:
            s.cr2 = value;
            dirty_ |= clean::kCr2;
            return;
        case ControlRegister::Cr8:
            vmcb_.control.virtual_interrupt =
                (vmcb_.control.virtual_interrupt & ~kVintrTprMask) | (value & kVintrTprMask);
            dirty_ |= clean::kTpr;
            return;
        case ControlRegister::Cr0: s.cr0 = value; break;
        case ControlRegister::Cr3: s.cr3 = value; break;
        case ControlRegister::Cr4: s.cr4 = value; break;
    }
    dirty_ |= clean::kCr;
    // The guest's own MOV CR3 (or a paging-mode change) flushes its translations; a write from
    // outside must too, and only a TLB flush can do that for the VMCB's copy.
    flush_tlb_ = true;
}

void SvmVcpu::set_efer(u64 efer) {
    const bool long_mode_active = (efer & kEferLme) && (vmcb_.save.cr0 & kCr0Pg);
    vmcb_.save.efer = (efer & ~kEferLma) | (long_mode_active ? kEferLma : 0) | x86::kEferSvme;
    dirty_ |= clean::kCr;
}

void SvmVcpu::inject_exception(u8 vector, bool has_error_code, u32 error_code) {
    u64 injection = vector | event::kTypeException | event::kValid;
    if (has_error_code)
        injection |= event::kErrorCodeValid | u64{error_code} << event::kErrorCodeShift;
    vmcb_.control.event_injection = injection;
    dirty_ |= kInjection;
}

// An external interrupt is taken at the instruction boundary where RFLAGS.IF is set and no
// STI / MOV SS shadow holds (15.21.4), one event at a time.
bool SvmVcpu::can_inject_interrupt() const {
    return (vmcb_.save.rflags & kRflagsInterrupt) && !(vmcb_.control.interrupt_state & kInterruptShadow) &&
           !(vmcb_.control.event_injection & event::kValid);
}

void SvmVcpu::inject_interrupt(u8 vector) {
    vmcb_.control.event_injection = vector | event::kTypeInterrupt | event::kValid;
    dirty_ |= kInjection;
}

// The window is a virtual interrupt left pending in V_IRQ, at the highest priority and past the
// TPR, with its delivery intercepted: the VINTR exit comes when the guest could take it
// (15.21.4). The core then injects the real one through EVENTINJ.
void SvmVcpu::request_interrupt_window(bool on) {
    VmcbControl& c = vmcb_.control;
    const u64 window = kVintrIrq | kVintrPriorityMask | kVintrIgnoreTpr;
    const u64 vintr = on ? c.virtual_interrupt | window : c.virtual_interrupt & ~window;
    if (vintr == c.virtual_interrupt) return;
    c.virtual_interrupt = vintr;
    c.intercept3 = on ? c.intercept3 | intercept3::kVintr : c.intercept3 & ~intercept3::kVintr;
    dirty_ |= clean::kTpr | clean::kIntercepts;
}

[[gnu::cold, gnu::noinline]] void SvmVcpu::warn_cannot_advance() const {
    log::warn("svm: cannot step over the instruction of exit {:#x} at RIP {:#x}",
              vmcb_.control.exit_code, vmcb_.save.rip);
}

void SvmVcpu::advance_rip() {
    if (!next_rip_) [[unlikely]] {
        warn_cannot_advance();
        return;
    }
    vmcb_.save.rip = next_rip_;
    // Stepping over an instruction ends the STI / MOV SS interrupt shadow, as executing it would.
    vmcb_.control.interrupt_state &= ~kInterruptShadow;
}

// What run() does only when something is unusual (dirty_ is set, or the vCPU came to another
// CPU): the VMRUN rule checks, the host state of a new CPU, TLB flushes and clean bits. Returns
// why the guest cannot enter, or nullptr.
[[gnu::noinline]] const char* SvmVcpu::prepare_unusual_entry(u32 cpu) {
    if (dirty_ & kRefused) return kRefusedByVmrun;
    // Only the core's setters and injections can break a VMRUN rule (the guest's own attempts
    // fault inside the guest), so the rules are checked after them. VMRUN would refuse such a
    // VMCB as well, but QEMU 7.2 then overwrites its guest state with the host's (its
    // do_vmexit saves state it never loaded), losing both the state and the diagnosis.
    if (dirty_) {
        if (const char* rule = broken_vmrun_rule(vmcb_)) {
            refuse_entry(rule);
            return rule;
        }
    }
    VmcbControl& c = vmcb_.control;
    if (cpu != last_cpu_) {
        // Another CPU's cached VMCB state and TLB entries for this ASID may be stale (15.15.2).
        dirty_ = clean::kAll;
        flush_tlb_ = true;
        last_cpu_ = cpu;
        // The host's share of the state VMLOAD and VMSAVE move (FS, GS, TR, LDTR with their
        // hidden parts, KernelGsBase, STAR, LSTAR, CSTAR, SFMASK, SYSENTER_CS/ESP/EIP: APM
        // 15.5.2, 15.30.4) is set once when a CPU comes up and never changes after; the GS
        // base is this CPU's per-CPU pointer. So it is saved once per CPU the vCPU arrives
        // on, not around every VMRUN: after each #VMEXIT svm_run_guest saves the guest's share
        // into the VMCB and loads this copy back, so the host runs with its own GS base, TR
        // and MSRs, and the guest always gets its own through the VMLOAD before VMRUN.
        asm volatile("vmsave %%rax" : : "a"(frames_.host_area) : "memory");
    }
    // complete_exit() sets both back to "nothing to flush" and "all clean".
    if (flush_tlb_) c.tlb_control = tlb_flush_;
    flush_tlb_ = false;
    c.clean_bits = all_clean_ & ~dirty_;
    dirty_ = 0;
    return nullptr;
}

void SvmVcpu::complete_exit() {
    VmcbControl& c = vmcb_.control;
    set_gpr(Gpr::Rax, vmcb_.save.rax);
    set_gpr(Gpr::Rsp, vmcb_.save.rsp);
    c.tlb_control = tlb_control::kNothing;
    c.clean_bits = all_clean_;
    c.event_injection = 0;
    if (c.exit_interrupt_info & event::kValid) [[unlikely]] reinject_interrupted_event();
}

// An event whose delivery the exit interrupted is in EXITINTINFO and must be delivered again
// (15.7.2); EVENTINJ has the same layout. An INTn, INT3 or INTO is not: RIP still points at
// the instruction, which raises it again.
void SvmVcpu::reinject_interrupted_event() {
    VmcbControl& c = vmcb_.control;
    const u64 pending = c.exit_interrupt_info;
    const u64 type = pending & event::kTypeMask;
    const u64 vector = pending & event::kVectorMask;
    const bool software = type == event::kTypeSoftwareInterrupt ||
                          (type == event::kTypeException && (vector == 3 || vector == 4));
    if (software) return;
    c.event_injection = pending;
    dirty_ |= kInjection;
}

ExitInfo SvmVcpu::run() {
    LAMINA_ASSERT(!x86::interrupts_enabled());
    PerCpu* cpu = this_cpu();
    if (!cpu->virtualization_on) return invalid_state("SVM is off on this CPU");
    // Everything unusual in one test: the usual exit changed nothing run() must look at.
    const u64 generation = stage2_generation_->load(MemoryOrder::Acquire);
    if (generation != flushed_generation_) [[unlikely]] {
        // The stage-2 space changed (hypervisor/stage2/stage2_space.h): the ASID's
        // translations go at this entry.
        flush_tlb_ = true;
        dirty_ |= clean::kNestedPaging;
        flushed_generation_ = generation;
    }
    if (dirty_ || cpu->index != last_cpu_) [[unlikely]] {
        if (const char* failure = prepare_unusual_entry(cpu->index)) return invalid_state(failure);
    }
    vmcb_.save.rax = gpr(Gpr::Rax);
    vmcb_.save.rsp = gpr(Gpr::Rsp);
    svm_run_guest(frames_.vmcb, frames_.host_area, gprs_);
    if (is_vmexit_invalid(vmcb_.control.exit_code)) [[unlikely]] return refused_by_vmrun();
    complete_exit();
    return decode_exit();
}

// The failure paths stay out of run(): their logging would otherwise cost every exit a stack
// frame and a stack-protector check.
[[gnu::cold, gnu::noinline]] void SvmVcpu::refuse_entry(const char* rule) const {
    log::error("svm: not entering the guest, VMRUN would refuse its VMCB: {}", rule);
    log_vmcb(vmcb_);
}

[[gnu::cold, gnu::noinline]] ExitInfo SvmVcpu::refused_by_vmrun() {
    // The refusal may have overwritten the guest state: QEMU 7.2 and Bochs 2.7 save their
    // half-loaded state, mostly the host's, into the VMCB. Run again, it could even pass
    // the checks and run host code as the guest: this vCPU never enters again.
    log::error("svm: {}", kRefusedByVmrun);
    log_vmcb(vmcb_);
    dirty_ |= kRefused;
    return invalid_state(kRefusedByVmrun);
}

ExitInfo SvmVcpu::decode_exit() {
    const VmcbControl& c = vmcb_.control;
    const u64 code = c.exit_code;
    // Not zeroed as a whole: the core reads only the union member the reason names, and the
    // failure text only for InvalidState.
    ExitInfo info;
    info.reason = ExitReason::Other;
    info.hardware_code = code;
    info.qualification = c.exit_info1;
    // The next RIP without NRIP save, from the lengths of the intercepted instructions. QEMU 7.2
    // TCG has none (CPUID Fn8000_000A EDX[3] = 0), so there this is the only way: an instruction
    // with redundant prefixes would leave RIP inside it (decode assists, which could tell, are
    // missing as well). IOIO always reports the next RIP in EXITINFO2 (15.10.2). 0: no next RIP.
    u64 next_rip = 0;
    const u64 rip = vmcb_.save.rip;

    // The intercepts of instructions and interrupts first: they are the frequent exits.
    if (code >= exit_code::kIntr) {
        switch (code) {
            case exit_code::kIntr:
            case exit_code::kNmi: info.reason = ExitReason::ExternalInterrupt; break;
            case exit_code::kVintr: info.reason = ExitReason::InterruptWindow; break;
            case exit_code::kCpuid:
                info.reason = ExitReason::Cpuid;
                next_rip = rip + 2;  // 0f a2
                break;
            case exit_code::kHlt:
                info.reason = ExitReason::Hlt;
                next_rip = rip + 1;  // f4
                break;
            case exit_code::kInvlpg: info.reason = ExitReason::Invlpg; break;
            case exit_code::kShutdown: info.reason = ExitReason::TripleFault; break;
            case exit_code::kVmmcall:
                info.reason = ExitReason::Hypercall;
                next_rip = rip + 3;  // 0f 01 d9
                break;
            case exit_code::kXsetbv:
                info.reason = ExitReason::Xsetbv;
                next_rip = rip + 3;  // 0f 01 d1
                break;
            case exit_code::kMsr:
                info.reason = (c.exit_info1 & kMsrWrite) ? ExitReason::MsrWrite : ExitReason::MsrRead;
                next_rip = rip + 2;  // 0f 32 (RDMSR), 0f 30 (WRMSR)
                break;
            case exit_code::kIoio:
                info.reason = ExitReason::Io;
                info.io = {static_cast<u16>(c.exit_info1 >> ioio::kPortShift),
                           static_cast<u8>((c.exit_info1 & ioio::kSizeMask) >> ioio::kSizeShift),
                           (c.exit_info1 & ioio::kIn) != 0, (c.exit_info1 & ioio::kString) != 0,
                           (c.exit_info1 & ioio::kRep) != 0};
                next_rip = c.exit_info2;
                break;
            case exit_code::kNestedPageFault: {
                const u64 error = c.exit_info1;
                const bool fetch = error & npf::kInstructionFetch;
                const bool write = error & npf::kWrite;
                info.reason = ExitReason::Stage2Fault;
                // A reserved bit set in a nested entry is the hypervisor's own bug, like an EPT
                // misconfiguration.
                info.stage2 = {c.exit_info2, !fetch && !write, write, fetch,
                               (error & npf::kReservedBit) != 0};
                break;
            }
            default: break;
        }
    } else if (code >= exit_code::kExceptionFirst && code <= exit_code::kExceptionLast) {
        const u8 vector = static_cast<u8>(code - exit_code::kExceptionFirst);
        info.reason = ExitReason::Exception;
        info.exception = {vector, exception_has_error_code(vector),
                          static_cast<u32>(c.exit_info1)};
    } else if (code <= exit_code::kCrWriteLast) {
        // Only decode assists name the GPR; without them the core would have to decode the
        // instruction, so the exit stays Other. No CR access is intercepted today.
        const u64 cr = code & 0xf;
        const bool neutral = cr == 0 || cr == 2 || cr == 3 || cr == 4 || cr == 8;
        if (neutral && (c.exit_info1 & kCrAccessGprValid)) {
            info.reason = ExitReason::ControlRegister;
            info.control_register = {static_cast<ControlRegister>(cr),
                                     code >= exit_code::kCrWriteFirst,
                                     static_cast<Gpr>(c.exit_info1 & kCrAccessGprMask)};
        }
    }
    // NEXT_RIP is zero after exits that are not instruction intercepts (15.7.1).
    next_rip_ = nrip_save_ ? c.next_rip : next_rip;
    return info;
}

}  // namespace
}  // namespace lamina::svm

namespace lamina {

Vcpu* create_svm_vcpu(const Stage2Binding& stage2, u16 asid, const EntryState& entry) {
    const svm::Capabilities& caps = svm::capabilities();
    if (asid == 0 || asid >= caps.asid_count) {
        log::error("svm: ASID {} outside 1..{}", asid, caps.asid_count - 1);
        return nullptr;
    }
    if (entry.mode == EntryMode::Real && entry.rip >= svm::kRealModeLimit) {
        log::error("svm: real-mode entry {:#x} above 1 MiB", entry.rip);
        return nullptr;
    }
    svm::Frames frames;
    if (!frames.allocate()) {
        frames.free();
        return nullptr;
    }
    svm::SvmVcpu* vcpu = heap().create<svm::SvmVcpu>(frames, stage2, asid, entry, caps);
    if (!vcpu) frames.free();
    return vcpu;
}

void destroy_svm_vcpu(Vcpu* vcpu) { heap().destroy(static_cast<svm::SvmVcpu*>(vcpu)); }

}  // namespace lamina
