// The VMX vCPU: VMCS set-up from the capability MSRs, the run loop, exit decoding, and the
// control-register bits the backend owns. Section numbers: SDM Vol. 3C of 2023 (VMCS chapter 25,
// VM entries 27, VM exits 28, EPT 29, VMX instructions 31).
#include <arch/x86_64/vmx/vmx_vcpu.h>
#include <arch/x86_64/registers.h>

#include <arch/x86_64/cpu.h>
#include <arch/x86_64/descriptors.h>
#include <arch/x86_64/guest_msrs.h>
#include <arch/x86_64/vmx/vmcs_fields.h>
#include <arch/x86_64/vmx/vmx_capabilities.h>
#include <arch/x86_64/vmx/vmx_instructions.h>
#include <hypervisor/heap.h>
#include <hypervisor/log.h>
#include <hypervisor/memory.h>
#include <hypervisor/percpu.h>
#include <lamina/assert.h>
#include <lamina/string.h>

// arch/x86_64/vmx/vmx_entry.S
extern "C" lamina::u64 vmx_enter(lamina::u64* gprs, lamina::u64 launched);
extern "C" char vmx_exit[];

namespace lamina {
namespace {

using namespace x86;

using namespace vmx;

// LMSW writes PE, MP, EM and TS, and can set PE but not clear it.
constexpr u64 kCr0LmswBits = 0xf;
constexpr u64 kCr8Bits = 0xf;
constexpr u64 kDr7Reset = 0x400;
constexpr u64 kPatPowerOn = 0x0007040600070406;  // SDM Vol. 3A "IA32_PAT MSR"

constexpr u8 kBreakpointVector = 3;
constexpr u8 kOverflowVector = 4;
constexpr u8 kGeneralProtectionVector = 13;
constexpr u8 kMachineCheckVector = 18;

// Guest segment access rights (SDM Vol. 3C 25.4.1); bit 16 marks an unusable segment.
constexpr u32 kAccessUnusable = 1u << 16;
constexpr u16 kAccessPresent = 1u << 7;
constexpr u16 kAccessLongMode = 1u << 13;
constexpr u16 kRealModeData = 0x93;  // read/write, accessed, S, P
// CS in real mode as well: type 3, which VM entry allows for CS with unrestricted guest (SDM
// Vol. 3C 27.3.1.2: its DPL must be 0, nothing more). Bochs 2.7 refuses an execute/read CS
// (type 11, 0x9b) whose selector's RPL is not its DPL, a check the SDM makes only without
// unrestricted guest; a real-mode start's selector (rip >> 4) has any low bits.
constexpr u16 kRealModeCode = kRealModeData;
constexpr u16 kFlatData32 = 0xc093;  // the same with D/B and G
constexpr u16 kFlatCode32 = 0xc09b;
constexpr u16 kFlatCode64 = 0xa09b;  // L instead of D/B (SDM Vol. 3C 27.3.1.2: not both)
// VM entry wants TR usable and busy in every mode, real mode included (SDM Vol. 3C 27.3.1.2);
// type 11 is the busy 32-bit TSS, and in IA-32e mode the busy 64-bit one.
constexpr u16 kBusyTss32 = 0x8b;
constexpr u32 kRealModeLimit = 0xffff;
constexpr u32 kFlatLimit = 0xffffffff;
constexpr u32 kTss32Limit = 0x67;
constexpr u16 kFlatCodeSelector = 0x08;
constexpr u16 kFlatDataSelector = 0x10;
constexpr u64 kRealModeReach = 1 * MiB;

// Guest interruptibility state (SDM Vol. 3C 25.4.2): blocking by STI and by MOV SS.
constexpr u64 kBlockingByStiOrMovSs = 3;
constexpr u64 kNoVmcsLink = ~u64{0};
// The bitmaps (SDM Vol. 3C 25.6.4, 25.6.9): two 4 KiB I/O bitmaps (ports 0-0x7fff, then the
// rest) and one MSR bitmap (read low, read high, write low, write high; 1 KiB each). A set
// bit makes the access exit.
constexpr usize kIoBitmapFrames = 2;
constexpr usize kMsrBitmapBytes = 4 * KiB;
constexpr u32 kMsrBitmapWriteOffset = 2048;
constexpr u32 kMsrHighRangeBase = 0xc0000000;
constexpr u32 kMsrRangeSize = 0x2000;

// Lets the guest read and write `msr` without an exit.
void pass_through_msr(u8* bitmap, u32 msr) {
    const bool high = msr >= kMsrHighRangeBase;
    const u32 index = msr - (high ? kMsrHighRangeBase : 0);
    LAMINA_ASSERT(index < kMsrRangeSize);
    const u32 read_byte = (high ? 1024 : 0) + index / 8;
    const u8 keep = static_cast<u8>(~(1u << (index % 8)));
    bitmap[read_byte] &= keep;
    bitmap[read_byte + kMsrBitmapWriteOffset] &= keep;
}

// EPTP (SDM Vol. 3C 25.6.11): paging structures write-back, a 4-level walk (length - 1).
constexpr u64 kEptpMemoryTypeWriteBack = 6;
constexpr u64 kEptpWalkLength4 = 3 << 3;

// Exit qualification of a control-register access (SDM Vol. 3C table 28-3).
enum class CrAccess : u8 { MovTo = 0, MovFrom = 1, Clts = 2, Lmsw = 3 };

constexpr u32 kBasicExitMask = 0xffff;

// VM-instruction error numbers (SDM Vol. 3C 31.4).
const char* instruction_error_text(u64 error) {
    constexpr const char* kTexts[] = {
        "no error",
        "VMCALL executed in VMX root operation",
        "VMCLEAR with invalid physical address",
        "VMCLEAR with VMXON pointer",
        "VMLAUNCH with non-clear VMCS",
        "VMRESUME with non-launched VMCS",
        "VMRESUME after VMXOFF",
        "VM entry with invalid control field(s)",
        "VM entry with invalid host-state field(s)",
        "VMPTRLD with invalid physical address",
        "VMPTRLD with VMXON pointer",
        "VMPTRLD with incorrect VMCS revision identifier",
        "VMREAD/VMWRITE from/to unsupported VMCS component",
        "VMWRITE to read-only VMCS component",
        "reserved",
        "VMXON executed in VMX root operation",
        "VM entry with invalid executive-VMCS pointer",
        "VM entry with non-launched executive VMCS",
        "VM entry with executive-VMCS pointer not VMXON pointer",
        "VMCALL with non-clear VMCS",
        "VMCALL with invalid VM-exit control fields",
        "reserved",
        "VMCALL with incorrect MSEG revision identifier",
        "VMXOFF under dual-monitor treatment of SMIs and SMM",
        "VMCALL with invalid SMM-monitor features",
        "VM entry with invalid VM-execution control fields in executive VMCS",
        "VM entry with events blocked by MOV SS",
        "reserved",
        "invalid operand to INVEPT/INVVPID",
    };
    return error < array_size(kTexts) ? kTexts[error] : "unknown VM-instruction error";
}

const char* segment_name(u32 index) {
    constexpr const char* kNames[] = {"es", "cs", "ss", "ds", "fs", "gs", "ldtr", "tr"};
    return kNames[index];
}

// The CR0 and CR4 bits the backend owns: they are in the guest/host mask, so the guest reads its
// own value of them from the read shadow and writing them exits. These are the bits that VMX
// operation fixes (IA32_VMX_CR{0,4}_FIXED{0,1}, SDM Vol. 3D A.7-A.8), and CR0.CD/NW, which VM
// entries and exits never load (SDM Vol. 3C 27.3.2.1, 28.5.1): left to the guest, its write
// would change the caching of the host too. The guest's CD and NW exist only in the shadow.
struct OwnedBits {
    u64 forced_on;     // 1 in the real register whatever the guest writes
    u64 allowed;       // may be 1 in the real register
    u64 virtual_only;  // the guest's value lives only in the read shadow
    u64 owned() const { return forced_on | ~allowed | virtual_only; }
    u64 real_value(u64 guest_value) const { return ((guest_value & ~virtual_only) | forced_on) & allowed; }
};

OwnedBits cr0_bits() {
    const Capabilities& caps = capabilities();
    // Unrestricted guest lets PE and PG be 0 (SDM Vol. 3C 27.3.1.1): the guest has them.
    return {caps.cr0_fixed0 & ~(kCr0Pe | kCr0Pg), caps.cr0_fixed1, kCr0Cd | kCr0Nw};
}

OwnedBits cr4_bits() {
    const Capabilities& caps = capabilities();
    return {caps.cr4_fixed0, caps.cr4_fixed1, 0};
}

struct Controls {
    u32 pin, primary, secondary, exit, entry;
};

// One control field: what the vCPU cannot run without, what it uses when the CPU allows it, and
// what it cannot cope with if the CPU forces it on.
struct ControlChoice {
    const char* name;
    const ControlMask& mask;
    u32 required;
    u32 optional;
    u32 unsupported;
};

bool choose(const ControlChoice& choice, u32* out) {
    const u32 value = choice.mask.adjust(choice.required | choice.optional);
    if ((value & choice.required) != choice.required) {
        log::error("vmx: vCPU needs {} controls {:#x}, which this CPU cannot set (allowed {:#x})",
                   choice.name, choice.required & ~value, choice.mask.may_be_one);
        return false;
    }
    if (value & choice.unsupported) {
        log::error("vmx: this CPU forces {} controls {:#x} on, which the backend does not handle",
                   choice.name, value & choice.unsupported);
        return false;
    }
    *out = value;
    return true;
}

bool choose_controls(const Capabilities& caps, Controls* c) {
    // Host interrupts and NMIs end the guest's time slice; CR3 accesses stay with the guest
    // (EPT); CR8 is the backend's (the guest must not reach the host's TPR); I/O ports and MSRs
    // exit as the bitmaps say. Interrupt-window exiting is switched on when the core asks.
    if (!caps.primary.allows(primary::kInterruptWindowExiting)) {
        log::error("vmx: no interrupt-window exiting: virtual interrupts could not be delivered");
        return false;
    }
    return choose({"pin-based", caps.pin_based, pin::kExternalInterruptExiting | pin::kNmiExiting, 0, 0},
                  &c->pin) &&
           choose({"primary processor-based", caps.primary,
                   primary::kHltExiting | primary::kCr8LoadExiting | primary::kCr8StoreExiting |
                       primary::kUseIoBitmaps | primary::kUseMsrBitmaps | primary::kActivateSecondary,
                   0, primary::kCr3LoadExiting | primary::kCr3StoreExiting | primary::kInterruptWindowExiting},
                  &c->primary) &&
           // Without the enable bits RDTSCP, INVPCID and XSAVES/XRSTORS raise #UD in the guest.
           choose({"secondary processor-based", caps.secondary,
                   secondary::kEnableEpt | secondary::kEnableVpid | secondary::kUnrestrictedGuest,
                   secondary::kEnableRdtscp | secondary::kEnableInvpcid | secondary::kEnableXsaves, 0},
                  &c->secondary) &&
           // Host interrupts are not acknowledged on exit: they stay pending in the local APIC
           // and are taken when the host enables interrupts.
           choose({"VM-exit", caps.exit,
                   exit_control::kHostAddressSpaceSize | exit_control::kSavePat |
                       exit_control::kLoadPat | exit_control::kSaveEfer | exit_control::kLoadEfer,
                   exit_control::kSaveDebugControls, exit_control::kAcknowledgeInterruptOnExit},
                  &c->exit) &&
           choose({"VM-entry", caps.entry, entry_control::kLoadPat | entry_control::kLoadEfer,
                   entry_control::kLoadDebugControls, 0},
                  &c->entry);
}

void flush_vpid(u16 vpid) {
    if (capabilities().invvpid_single) {
        invvpid(InvvpidType::SingleContext, vpid);
    } else {
        invvpid(InvvpidType::AllContexts, 0);
    }
}

bool flush_ept(u64 eptp) {
    return capabilities().invept_single ? invept(InveptType::SingleContext, eptp)
                                        : invept(InveptType::AllContexts, 0);
}

// A host NMI or machine check that arrived while the guest ran caused the exit and is gone from
// the CPU: the host's own handler must see it as if it had interrupted the host.
void reflect_to_host(u8 vector) {
    if (vector == kMachineCheckVector) {
        asm volatile("int $18" ::: "memory");
    } else {
        asm volatile("int $2" ::: "memory");
    }
}

class VmxVcpu final : public Vcpu {
public:
    explicit VmxVcpu(u32 cpu) : active_cpu_(kNoCpu), host_cpu_(cpu) {}
    ~VmxVcpu();
    VmxVcpu(const VmxVcpu&) = delete;
    VmxVcpu& operator=(const VmxVcpu&) = delete;

    bool init(const Stage2Binding& stage2, u16 vpid, const EntryState& entry);

    ExitInfo run() override;
    u64 rip() const override { return read_current(Field::GuestRip); }
    void set_rip(u64 rip) override { write_current(Field::GuestRip, rip); }
    u64 rflags() const override { return read_current(Field::GuestRflags); }
    void set_rflags(u64 rflags) override { write_current(Field::GuestRflags, rflags); }
    u64 control_register(ControlRegister cr) const override;
    void set_control_register(ControlRegister cr, u64 value) override;
    u64 efer() const override { return read_current(Field::GuestEfer); }
    void set_efer(u64 efer) override;
    Segment segment(SegmentRegister s) const override;
    void set_segment(SegmentRegister s, const Segment& value) override;
    DescriptorTable gdtr() const override;
    DescriptorTable idtr() const override;
    ExecutionMode execution_mode() const override;
    void advance_rip() override;
    void inject_exception(u8 vector, bool has_error_code, u32 error_code) override;
    bool can_inject_interrupt() const override;
    void inject_interrupt(u8 vector) override;
    void request_interrupt_window(bool on) override;
    u64 pat() const override { return read_current(Field::GuestPat); }
    void set_pat(u64 pat) override { write_current(Field::GuestPat, pat); }
    u64 flushed_stage2_generation() const override { return flushed_generation_; }
    void release() override;

private:
    enum class CrWrite : u8 { Done, Faulted, NeedsCore };

    // Every public entry point first makes this vCPU's VMCS the current one.
    void make_current() const;
    void load_vmcs() const;
    void log_vmptrld_failed() const;
    void write_failed(Field field, u64 value);
    u64 read(Field field) const;
    void write(Field field, u64 value);
    u64 read_current(Field field) const {
        make_current();
        return read(field);
    }
    void write_current(Field field, u64 value) {
        make_current();
        write(field, value);
    }

    void write_controls(const Controls& controls, u64 eptp_root_phys, u16 vpid);
    void switch_lazy_msrs(PerCpu& cpu);
    void arrive_on_this_cpu(u32 cpu);
    void flush_stage2(u64 generation);
    void write_host_state();
    void write_entry_state(const EntryState& entry);
    void write_segment(u32 index, const Segment& s);

    u64 guest_cr0() const;
    u64 guest_cr4() const;
    void load_cr0(u64 value);
    void load_cr4(u64 value);
    void load_efer(u64 efer);
    bool in_64bit_mode() const;

    bool decode_exit(u32 reason, ExitInfo& info);
    bool decode_rare_exit(ExitInfo& info);
    bool decode_exception_or_nmi(ExitInfo& info);
    bool complete_cr_access(ExitInfo& info);
    CrWrite write_cr0_checked(u64 value);
    CrWrite write_cr4_checked(u64 value);
    void requeue_interrupted_event(u32 vectoring);
    void entry_instruction_failed(u64 result, ExitInfo& info);
    void entry_failed_on_load(u32 reason, ExitInfo& info);
    ExitInfo entry_failed(const char* failure, u64 exit_reason, u64 qualification);
    void log_vmcs_state() const;

    static constexpr u32 kNoCpu = ~0u;
    // The CPU where the VMCS is active (loaded by VMPTRLD and not cleared since), or kNoCpu.
    // A VMCS may be active on one CPU at a time (SDM Vol. 3C 25.1): release() clears it.
    mutable u32 active_cpu_;
    // The CPU whose host state the VMCS holds and whose TLBs were flushed for this VPID and
    // EPTP at the vCPU's arrival.
    u32 host_cpu_;
    u64 vmcs_phys_ = 0;
    u64 msr_bitmap_phys_ = 0;
    u64 io_bitmaps_phys_ = 0;
    u16 vpid_ = 0;
    // The primary processor-based controls as written, so the interrupt window needs no VMREAD.
    u32 primary_controls_ = 0;
    const Atomic<u64>* stage2_generation_ = nullptr;
    u64 flushed_generation_ = 0;
    // The guest's values of x86::kVmxLazyMsrs while another vCPU's are in the CPU.
    u64 lazy_msrs_[sizeof(x86::kVmxLazyMsrs) / sizeof(u32)] = {};
    bool launched_ = false;
    u32 failed_writes_ = 0;
    // Neither is in the VMCS: CR2 is the CPU's own register while the guest runs, and CR8
    // accesses exit to the backend, which keeps the guest's task priority here.
    u64 cr2_ = 0;
    u64 cr8_ = 0;
    // The guest RSP the VMCS holds (written by write_entry_state or read after the last exit).
    u64 vmcs_rsp_ = 0;
};

VmxVcpu::~VmxVcpu() {
    // VMCLEAR writes back what the CPU caches of the VMCS, so the frame is free only after.
    release();
    if (vmcs_phys_) memory::free_frames(vmcs_phys_);
    if (msr_bitmap_phys_) memory::free_frames(msr_bitmap_phys_);
    if (io_bitmaps_phys_) memory::free_frames(io_bitmaps_phys_, kIoBitmapFrames);
}

void VmxVcpu::make_current() const {
    if (vmptrst() != vmcs_phys_) [[unlikely]] load_vmcs();
}

// Another vCPU's VMCS was current on this CPU, or this one is active nowhere.
[[gnu::noinline]] void VmxVcpu::load_vmcs() const {
    const u32 cpu = this_cpu()->index;
    // Active on another CPU: whoever runs vCPUs let two CPUs at it (a hypervisor bug).
    LAMINA_ASSERT(active_cpu_ == kNoCpu || active_cpu_ == cpu);
    if (!vmptrld(vmcs_phys_)) log_vmptrld_failed();
    active_cpu_ = cpu;
}

void VmxVcpu::release() {
    if (active_cpu_ == kNoCpu) return;
    PerCpu& cpu = *this_cpu();
    LAMINA_ASSERT(active_cpu_ == cpu.index);
    // The guest's lazy MSRs are in this CPU: back into the vCPU, for whichever CPU runs it next.
    if (cpu.lazy_msr_owner == this) {
        for (usize i = 0; i < sizeof(x86::kVmxLazyMsrs) / sizeof(u32); ++i) lazy_msrs_[i] = x86::rdmsr(x86::kVmxLazyMsrs[i]);
        cpu.lazy_msr_owner = nullptr;
    }
    vmclear(vmcs_phys_);
    // A cleared VMCS is entered with VMLAUNCH again (SDM Vol. 3C 25.11.3).
    launched_ = false;
    active_cpu_ = kNoCpu;
}

// The first run on a CPU other than the last: the host state is this CPU's (GS base, TR, GDT,
// IDT), and its TLBs may hold stale translations tagged with this VPID and EPTP from an earlier
// visit (or a destroyed domain's vCPU that had them).
[[gnu::noinline]] void VmxVcpu::arrive_on_this_cpu(u32 cpu) {
    write_host_state();
    flush_ept(read(Field::EptPointer));
    flush_vpid(vpid_);
    flushed_generation_ = stage2_generation_->load(MemoryOrder::Acquire);
    host_cpu_ = cpu;
}

// The failure reports stay out of line: inlined, their argument arrays would cost every caller
// on the exit path a bigger frame and a stack-protector check.
[[gnu::cold, gnu::noinline]] void VmxVcpu::log_vmptrld_failed() const {
    log::error("vmx: VMPTRLD {:#x} failed: {}", vmcs_phys_,
               instruction_error_text(read(Field::VmInstructionError)));
}

u64 VmxVcpu::read(Field field) const { return vmread(field); }

void VmxVcpu::write(Field field, u64 value) {
    if (!vmwrite(field, value)) [[unlikely]] write_failed(field, value);
}

[[gnu::cold, gnu::noinline]] void VmxVcpu::write_failed(Field field, u64 value) {
    ++failed_writes_;
    log::error("vmx: VMWRITE {:#x} to field {:#06x} failed: {}", value, static_cast<u32>(field),
               instruction_error_text(read(Field::VmInstructionError)));
}

bool VmxVcpu::init(const Stage2Binding& stage2, u16 vpid, const EntryState& entry) {
    const Capabilities& caps = capabilities();
    Controls controls;
    if (!this_cpu()->virtualization_on) {
        log::error("vmx: VMX is off on cpu{}", host_cpu_);
        return false;
    }
    if (vpid == 0) {
        log::error("vmx: VPID 0 tags the host's own translations");
        return false;
    }
    if (entry.mode == EntryMode::Real && entry.rip >= kRealModeReach) {
        log::error("vmx: real-mode entry {:#x} is beyond 1 MiB", entry.rip);
        return false;
    }
    if (!(caps.invvpid && (caps.invvpid_single || caps.invvpid_all)) ||
        !(caps.invept_single || caps.invept_all)) {
        log::error("vmx: no usable INVEPT/INVVPID type (capabilities {:#x})", caps.ept_vpid);
        return false;
    }
    if (!choose_controls(caps, &controls)) return false;

    // IA32_VMX_BASIC[48] limits the VMCS and the structures it points to to 32-bit addresses.
    const u64 max_phys = caps.regions_below_4g ? 4 * GiB : memory::kNoLimit;
    vmcs_phys_ = memory::allocate_frames(1, 1, max_phys);
    msr_bitmap_phys_ = memory::allocate_frames(1, 1, max_phys);
    io_bitmaps_phys_ = memory::allocate_frames(kIoBitmapFrames, 1, max_phys);
    if (!vmcs_phys_ || !msr_bitmap_phys_ || !io_bitmaps_phys_) {
        log::error("vmx: no memory for a VMCS");
        return false;
    }
    *static_cast<u32*>(memory::phys_to_virt(vmcs_phys_)) = caps.revision_id;
    // Every port exits (until a domain is given ports of its own); every MSR but the guest's own.
    str::fill_bytes(memory::phys_to_virt(io_bitmaps_phys_), 0xff, kIoBitmapFrames * 4 * KiB);
    auto* msr_bitmap = static_cast<u8*>(memory::phys_to_virt(msr_bitmap_phys_));
    str::fill_bytes(msr_bitmap, 0xff, kMsrBitmapBytes);
    for (u32 msr : x86::kGuestOwnedMsrs) pass_through_msr(msr_bitmap, msr);
    if (!vmclear(vmcs_phys_) || !vmptrld(vmcs_phys_)) {
        log::error("vmx: VMCLEAR/VMPTRLD of a new VMCS at {:#x} failed", vmcs_phys_);
        return false;
    }
    active_cpu_ = this_cpu()->index;
    vpid_ = vpid;

    write_controls(controls, stage2.root, vpid);
    stage2_generation_ = stage2.generation;
    write_host_state();
    write_entry_state(entry);
    if (failed_writes_) return false;

    // Translations a previous user of this EPT root or VPID left in this CPU's TLBs go.
    const u64 eptp = read(Field::EptPointer);
    if (!flush_ept(eptp)) {
        log::error("vmx: INVEPT of EPTP {:#x} failed: {}", eptp,
                   instruction_error_text(read(Field::VmInstructionError)));
        return false;
    }
    flush_vpid(vpid);
    flushed_generation_ = stage2.generation->load(MemoryOrder::Acquire);
    return true;
}

void VmxVcpu::write_controls(const Controls& controls, u64 eptp_root_phys, u16 vpid) {
    write(Field::PinBasedControls, controls.pin);
    write(Field::PrimaryProcessorControls, controls.primary);
    primary_controls_ = controls.primary;
    write(Field::SecondaryProcessorControls, controls.secondary);
    write(Field::VmExitControls, controls.exit);
    // "IA-32e mode guest" follows EFER.LMA (load_efer).
    write(Field::VmEntryControls, controls.entry);
    write(Field::VmExitMsrStoreCount, 0);
    write(Field::VmExitMsrLoadCount, 0);
    write(Field::VmEntryMsrLoadCount, 0);
    write(Field::VmEntryInterruptionInfo, 0);
    write(Field::Cr3TargetCount, 0);
    // Only machine checks: they belong to the host (reflect_to_host).
    write(Field::ExceptionBitmap, u32{1} << kMachineCheckVector);
    write(Field::PageFaultErrorCodeMask, 0);
    write(Field::PageFaultErrorCodeMatch, 0);
    write(Field::MsrBitmap, msr_bitmap_phys_);
    write(Field::IoBitmapA, io_bitmaps_phys_);
    write(Field::IoBitmapB, io_bitmaps_phys_ + 4 * KiB);
    write(Field::Cr0GuestHostMask, cr0_bits().owned());
    write(Field::Cr4GuestHostMask, cr4_bits().owned());
    write(Field::EptPointer, eptp_root_phys | kEptpMemoryTypeWriteBack | kEptpWalkLength4);
    write(Field::VirtualProcessorId, vpid);
    // XSAVES and XRSTORS exit for the XSS bits set here: none.
    if (controls.secondary & secondary::kEnableXsaves) write(Field::XssExitingBitmap, 0);
}

void VmxVcpu::write_host_state() {
    using x86::rdmsr;
    write(Field::HostCr0, x86::read_cr0());
    write(Field::HostCr3, x86::read_cr3());
    write(Field::HostCr4, x86::read_cr4());
    write(Field::HostCsSelector, x86::kKernelCodeSelector);
    write(Field::HostSsSelector, x86::kKernelDataSelector);
    write(Field::HostDsSelector, x86::kKernelDataSelector);
    write(Field::HostEsSelector, x86::kKernelDataSelector);
    write(Field::HostFsSelector, 0);
    write(Field::HostGsSelector, 0);
    write(Field::HostTrSelector, x86::kTssSelector);
    write(Field::HostFsBase, rdmsr(x86::msr::kFsBase));
    // The per-CPU pointer (hypervisor/percpu.h).
    write(Field::HostGsBase, rdmsr(x86::msr::kGsBase));
    write(Field::HostTrBase, reinterpret_cast<u64>(&this_cpu()->descriptors.tss));
    write(Field::HostGdtrBase, x86::current_gdt().base);
    write(Field::HostIdtrBase, x86::current_idt().base);
    write(Field::HostSysenterCs, rdmsr(x86::msr::kSysenterCs));
    write(Field::HostSysenterEsp, rdmsr(x86::msr::kSysenterEsp));
    write(Field::HostSysenterEip, rdmsr(x86::msr::kSysenterEip));
    write(Field::HostEfer, rdmsr(x86::msr::kEfer));
    write(Field::HostPat, rdmsr(x86::msr::kPat));
    // HOST_RSP is written by vmx_enter, which knows the stack it returns on.
    write(Field::HostRip, reinterpret_cast<u64>(vmx_exit));
}

void VmxVcpu::write_entry_state(const EntryState& entry) {
    const bool real = entry.mode == EntryMode::Real;
    const bool long64 = entry.mode == EntryMode::Long64;
    const Segment data = real ? Segment{0, 0, kRealModeLimit, kRealModeData}
                              : Segment{kFlatDataSelector, 0, kFlatLimit, kFlatData32};
    const u16 code_selector = real ? static_cast<u16>(entry.rip >> 4) : kFlatCodeSelector;
    const Segment code = real ? Segment{code_selector, u64{code_selector} << 4, kRealModeLimit, kRealModeCode}
                              : Segment{code_selector, 0, kFlatLimit, long64 ? kFlatCode64 : kFlatCode32};
    constexpr SegmentRegister kDataSegments[] = {SegmentRegister::Es, SegmentRegister::Ss, SegmentRegister::Ds,
                                                 SegmentRegister::Fs, SegmentRegister::Gs};
    for (SegmentRegister s : kDataSegments) write_segment(static_cast<u32>(s), data);
    write_segment(static_cast<u32>(SegmentRegister::Cs), code);
    write_segment(static_cast<u32>(SegmentRegister::Ldtr), Segment{0, 0, 0, 0});  // unusable
    write_segment(static_cast<u32>(SegmentRegister::Tr),
                  Segment{0, 0, real ? kRealModeLimit : kTss32Limit, kBusyTss32});
    // The descriptor-table registers as after reset (SDM Vol. 3A "IA-32 Processor States
    // Following Power-up, Reset, or INIT").
    write(Field::GuestGdtrBase, 0);
    write(Field::GuestGdtrLimit, 0xffff);
    write(Field::GuestIdtrBase, 0);
    write(Field::GuestIdtrLimit, 0xffff);

    write(Field::GuestRip, real ? entry.rip & 0xf : entry.rip);
    write(Field::GuestRflags, entry.rflags);
    str::copy_bytes(gprs_, entry.gprs, sizeof gprs_);
    vmcs_rsp_ = gprs_[static_cast<u8>(Gpr::Rsp)];
    write(Field::GuestRsp, vmcs_rsp_);

    // load_cr0 sets LMA and the "IA-32e mode guest" control from LME and PG.
    write(Field::GuestEfer, entry.efer);
    write(Field::GuestPat, kPatPowerOn);
    write(Field::GuestCr3, entry.cr3);
    for (u32 i = 0; i < 4; ++i) write(static_cast<Field>(static_cast<u32>(Field::GuestPdpte0) + 2 * i), 0);
    load_cr4(entry.cr4);
    // Long64 starts with the context's CR0 (ET reads as 1 whatever is written, SDM Vol. 3A 2.5).
    // The others: the reset value of CR0 without CD and NW (a guest should not start uncached),
    // plus NE so that the usual writes of CR0 leave the owned bit as it is and need no exit.
    load_cr0(long64 ? entry.cr0 | kCr0Et : (real ? 0 : kCr0Pe) | kCr0Et | kCr0Ne);
    write(Field::GuestDr7, kDr7Reset);
    write(Field::GuestDebugCtl, 0);
    write(Field::GuestSysenterCs, 0);
    write(Field::GuestSysenterEsp, 0);
    write(Field::GuestSysenterEip, 0);
    write(Field::GuestPendingDebugExceptions, 0);
    write(Field::GuestActivityState, 0);  // active
    write(Field::GuestInterruptibility, 0);
    write(Field::VmcsLinkPointer, kNoVmcsLink);
}

void VmxVcpu::write_segment(u32 index, const Segment& s) {
    // The neutral layout has no unusable bit: a segment that is not present is unusable.
    const u32 access = (s.attributes & kAccessPresent) ? s.attributes : s.attributes | kAccessUnusable;
    write(segment_field(SegmentPart::Selector, index), s.selector);
    write(segment_field(SegmentPart::Base, index), s.base);
    write(segment_field(SegmentPart::Limit, index), s.limit);
    write(segment_field(SegmentPart::AccessRights, index), access);
}

Segment VmxVcpu::segment(SegmentRegister s) const {
    make_current();
    const u32 index = static_cast<u32>(s);
    const u64 access = read(segment_field(SegmentPart::AccessRights, index));
    return Segment{static_cast<u16>(read(segment_field(SegmentPart::Selector, index))),
                   read(segment_field(SegmentPart::Base, index)),
                   static_cast<u32>(read(segment_field(SegmentPart::Limit, index))),
                   static_cast<u16>((access & kAccessUnusable) ? access & ~u64{kAccessPresent} : access)};
}

void VmxVcpu::set_segment(SegmentRegister s, const Segment& value) {
    make_current();
    write_segment(static_cast<u32>(s), value);
}

DescriptorTable VmxVcpu::gdtr() const {
    make_current();
    return {read(Field::GuestGdtrBase), static_cast<u16>(read(Field::GuestGdtrLimit))};
}

DescriptorTable VmxVcpu::idtr() const {
    make_current();
    return {read(Field::GuestIdtrBase), static_cast<u16>(read(Field::GuestIdtrLimit))};
}

// What the guest reads: its own bits from the register, the owned ones from the read shadow.
u64 VmxVcpu::guest_cr0() const {
    const u64 owned = cr0_bits().owned();
    return (read(Field::GuestCr0) & ~owned) | (read(Field::Cr0ReadShadow) & owned);
}

u64 VmxVcpu::guest_cr4() const {
    const u64 owned = cr4_bits().owned();
    return (read(Field::GuestCr4) & ~owned) | (read(Field::Cr4ReadShadow) & owned);
}

// Loading CR0 as the guest sees it. A change of PG enters or leaves long mode as MOV to CR0
// would (SDM Vol. 3A "Initializing IA-32e Mode"), and a change of the real value flushes the guest's TLB, which
// the VPID keeps across VM exits.
void VmxVcpu::load_cr0(u64 value) {
    const OwnedBits bits = cr0_bits();
    const u64 real = bits.real_value(value);
    // The CR0 field holds the CPU's own CD and NW after an exit.
    const bool changed = (real ^ read(Field::GuestCr0)) & ~bits.virtual_only;
    write(Field::Cr0ReadShadow, value);
    write(Field::GuestCr0, real);
    load_efer(read(Field::GuestEfer));
    if (changed) flush_vpid(vpid_);
}

void VmxVcpu::load_cr4(u64 value) {
    const u64 real = cr4_bits().real_value(value);
    const bool changed = real != read(Field::GuestCr4);
    write(Field::Cr4ReadShadow, value);
    write(Field::GuestCr4, real);
    if (changed) flush_vpid(vpid_);
}

// EFER.LMA is LME and CR0.PG together, and VM entry wants the "IA-32e mode guest" control to
// match it (SDM Vol. 3C 27.3.1.1). VM exits store LMA into that control themselves.
void VmxVcpu::load_efer(u64 efer) {
    const bool long_mode = (efer & kEferLme) && (read(Field::GuestCr0) & kCr0Pg);
    write(Field::GuestEfer, long_mode ? efer | kEferLma : efer & ~kEferLma);
    const u64 entry = read(Field::VmEntryControls);
    write(Field::VmEntryControls, long_mode ? entry | entry_control::kIa32eModeGuest
                                            : entry & ~u64{entry_control::kIa32eModeGuest});
}

// With unrestricted guest SS.DPL is the CPL (SDM Vol. 3C 27.3.1.2).
ExecutionMode VmxVcpu::execution_mode() const {
    make_current();
    const u64 ss = read(segment_field(SegmentPart::AccessRights, static_cast<u32>(SegmentRegister::Ss)));
    return {static_cast<u8>((ss >> 5) & 3), in_64bit_mode()};
}

bool VmxVcpu::in_64bit_mode() const {
    return (read(Field::GuestEfer) & kEferLma) &&
           (read(segment_field(SegmentPart::AccessRights, static_cast<u32>(SegmentRegister::Cs))) &
            kAccessLongMode);
}

u64 VmxVcpu::control_register(ControlRegister cr) const {
    make_current();
    switch (cr) {
        case ControlRegister::Cr0: return guest_cr0();
        case ControlRegister::Cr2: return cr2_;
        case ControlRegister::Cr3: return read(Field::GuestCr3);
        case ControlRegister::Cr4: return guest_cr4();
        case ControlRegister::Cr8: return cr8_;
    }
    return 0;
}

void VmxVcpu::set_control_register(ControlRegister cr, u64 value) {
    make_current();
    switch (cr) {
        case ControlRegister::Cr0: load_cr0(value); break;
        case ControlRegister::Cr2: cr2_ = value; break;
        case ControlRegister::Cr3:
            write(Field::GuestCr3, value);
            flush_vpid(vpid_);
            break;
        case ControlRegister::Cr4: load_cr4(value); break;
        case ControlRegister::Cr8: cr8_ = value & kCr8Bits; break;
    }
}

void VmxVcpu::set_efer(u64 efer) {
    make_current();
    load_efer(efer);
    flush_vpid(vpid_);
}

void VmxVcpu::advance_rip() {
    make_current();
    write(Field::GuestRip, read(Field::GuestRip) + read(Field::ExitInstructionLength));
    // STI and MOV SS block interrupts for one instruction: the one just stepped over.
    const u64 interruptibility = read(Field::GuestInterruptibility);
    if (interruptibility & kBlockingByStiOrMovSs) {
        write(Field::GuestInterruptibility, interruptibility & ~kBlockingByStiOrMovSs);
    }
}

void VmxVcpu::inject_exception(u8 vector, bool has_error_code, u32 error_code) {
    make_current();
    using interruption::Type;
    // INT3 and INTO raise #BP and #OF as software exceptions, delivered past the instruction
    // (SDM Vol. 3C 25.8.3, 27.6.1); real mode pushes no error code (SDM Vol. 3C 27.2.1.3).
    const bool software = vector == kBreakpointVector || vector == kOverflowVector;
    const bool deliver_error_code = has_error_code && (read(Field::GuestCr0) & kCr0Pe);
    const Type type = software ? Type::SoftwareException : Type::HardwareException;
    write(Field::VmEntryInterruptionInfo,
          vector | (static_cast<u32>(type) << interruption::kTypeShift) |
              (deliver_error_code ? interruption::kErrorCodeValid : 0) | interruption::kValid);
    if (deliver_error_code) write(Field::VmEntryExceptionErrorCode, error_code);
    if (software) write(Field::VmEntryInstructionLength, read(Field::ExitInstructionLength));
}

// SDM Vol. 3C 27.3.2.3 / 27.6: an external interrupt is delivered at entry only when the guest
// could take it there (RFLAGS.IF, no STI or MOV SS blocking), and one event at a time.
bool VmxVcpu::can_inject_interrupt() const {
    make_current();
    return (read(Field::GuestRflags) & kRflagsInterrupt) && !(read(Field::GuestInterruptibility) & kBlockingByStiOrMovSs) &&
           !(read(Field::VmEntryInterruptionInfo) & interruption::kValid);
}

void VmxVcpu::inject_interrupt(u8 vector) {
    make_current();
    write(Field::VmEntryInterruptionInfo,
          vector | (static_cast<u32>(interruption::Type::ExternalInterrupt) << interruption::kTypeShift) |
              interruption::kValid);
}

void VmxVcpu::request_interrupt_window(bool on) {
    const u32 controls = on ? primary_controls_ | primary::kInterruptWindowExiting
                            : primary_controls_ & ~primary::kInterruptWindowExiting;
    if (controls == primary_controls_) return;
    make_current();
    write(Field::PrimaryProcessorControls, controls);
    primary_controls_ = controls;
}

// KERNEL_GS_BASE and the SYSCALL MSRs are not in the VMCS, and the host never uses them: they
// stay in the CPU between exits and are exchanged only when another vCPU runs on this CPU.
[[gnu::noinline]] void VmxVcpu::switch_lazy_msrs(PerCpu& cpu) {
    if (auto* previous = static_cast<VmxVcpu*>(cpu.lazy_msr_owner)) {
        for (usize i = 0; i < sizeof(x86::kVmxLazyMsrs) / sizeof(u32); ++i)
            previous->lazy_msrs_[i] = x86::rdmsr(x86::kVmxLazyMsrs[i]);
    }
    for (usize i = 0; i < sizeof(x86::kVmxLazyMsrs) / sizeof(u32); ++i) x86::wrmsr(x86::kVmxLazyMsrs[i], lazy_msrs_[i]);
    cpu.lazy_msr_owner = this;
}

// The stage-2 space changed since this vCPU's last flush (hypervisor/stage2/stage2_space.h).
// INVEPT drops the guest-physical and the combined translations of the EPTP (SDM Vol. 3C 29.4.3.1).
[[gnu::noinline]] void VmxVcpu::flush_stage2(u64 generation) {
    flush_ept(read(Field::EptPointer));
    flushed_generation_ = generation;
}

ExitInfo VmxVcpu::run() {
    // An interrupt taken between here and VM entry would run with the guest's CR2 loaded, and
    // one taken after the exit would find the guest's registers half stored.
    LAMINA_ASSERT(!x86::interrupts_enabled());
    make_current();
    PerCpu& cpu = *this_cpu();
    if (host_cpu_ != cpu.index) [[unlikely]] arrive_on_this_cpu(cpu.index);
    if (cpu.lazy_msr_owner != this) [[unlikely]] switch_lazy_msrs(cpu);
    // Built in the caller's slot (every return returns it), so run() keeps no copy on its stack.
    // Not zeroed as a whole: decode_exit fills what the core reads for the reason.
    ExitInfo info;
    for (;;) {
        // The VMCS holds the guest's RSP: written only when the core changed the slot.
        if (gprs_[static_cast<u8>(Gpr::Rsp)] != vmcs_rsp_) [[unlikely]] {
            write(Field::GuestRsp, gprs_[static_cast<u8>(Gpr::Rsp)]);
            vmcs_rsp_ = gprs_[static_cast<u8>(Gpr::Rsp)];
        }
        if (x86::read_cr2() != cr2_) [[unlikely]] x86::write_cr2(cr2_);
        const u64 generation = stage2_generation_->load(MemoryOrder::Acquire);
        if (generation != flushed_generation_) [[unlikely]] flush_stage2(generation);
        const u64 result = vmx_enter(gprs_, launched_);
        cr2_ = x86::read_cr2();
        if (result != 0) [[unlikely]] {
            entry_instruction_failed(result, info);
            return info;
        }

        vmcs_rsp_ = read(Field::GuestRsp);
        gprs_[static_cast<u8>(Gpr::Rsp)] = vmcs_rsp_;
        const u32 reason = static_cast<u32>(read(Field::ExitReason));
        if (reason & kExitReasonEntryFailure) [[unlikely]] {
            entry_failed_on_load(reason, info);
            return info;
        }
        // Only a successful entry launches the VMCS (SDM Vol. 3C 27.8).
        launched_ = true;
        // An exit in the middle of delivering an event to the guest (an EPT violation on the
        // IDT, a host interrupt) would lose the event.
        const u32 vectoring = static_cast<u32>(read(Field::IdtVectoringInfo));
        if (vectoring & interruption::kValid) [[unlikely]] requeue_interrupted_event(vectoring);
        if (decode_exit(reason, info)) return info;
    }
}

// The failure paths stay out of run(): their logging would otherwise cost every exit a bigger
// stack frame and a stack-protector check.
[[gnu::cold, gnu::noinline]] void VmxVcpu::entry_instruction_failed(u64 result, ExitInfo& info) {
    if (result == 2) {
        info = entry_failed("VMLAUNCH/VMRESUME without a current VMCS", 0, 0);
        return;
    }
    const u64 error = read(Field::VmInstructionError);
    log::error("vmx: {} failed: VM-instruction error {} ({})", launched_ ? "VMRESUME" : "VMLAUNCH", error,
               instruction_error_text(error));
    info = entry_failed(instruction_error_text(error), 0, 0);
}

[[gnu::cold, gnu::noinline]] void VmxVcpu::entry_failed_on_load(u32 reason, ExitInfo& info) {
    const u64 qualification = read(Field::ExitQualification);
    const char* failure;
    switch (static_cast<BasicExit>(reason & kBasicExitMask)) {
        case BasicExit::InvalidGuestState: failure = "VM entry failed: invalid guest state"; break;
        case BasicExit::MsrLoading: failure = "VM entry failed: MSR loading"; break;
        case BasicExit::MachineCheckDuringEntry: failure = "VM entry failed: machine check"; break;
        default: failure = "VM entry failed"; break;
    }
    log::error("vmx: {} (exit reason {:#x}, qualification {:#x})", failure, reason, qualification);
    info = entry_failed(failure, reason & kBasicExitMask, qualification);
}

[[gnu::cold, gnu::noinline]] ExitInfo VmxVcpu::entry_failed(const char* failure, u64 exit_reason,
                                                             u64 qualification) {
    log_vmcs_state();
    ExitInfo info{};
    info.reason = ExitReason::InvalidState;
    info.hardware_code = exit_reason;
    info.qualification = qualification;
    info.failure = failure;
    return info;
}

[[gnu::cold, gnu::noinline]] void VmxVcpu::log_vmcs_state() const {
    log::error("vmx:   rip {:#x} rsp {:#x} rflags {:#x} efer {:#x} activity {} interruptibility {:#x}",
               read(Field::GuestRip), read(Field::GuestRsp), read(Field::GuestRflags),
               read(Field::GuestEfer), read(Field::GuestActivityState),
               read(Field::GuestInterruptibility));
    log::error("vmx:   cr0 {:#x} (shadow {:#x}, mask {:#x}) cr3 {:#x} cr4 {:#x} (shadow {:#x}, mask {:#x})",
               read(Field::GuestCr0), read(Field::Cr0ReadShadow), read(Field::Cr0GuestHostMask),
               read(Field::GuestCr3), read(Field::GuestCr4), read(Field::Cr4ReadShadow),
               read(Field::Cr4GuestHostMask));
    for (u32 index = 0; index < 8; ++index) {
        log::error("vmx:   {} selector {:#06x} base {:#x} limit {:#x} access rights {:#x}",
                   segment_name(index), read(segment_field(SegmentPart::Selector, index)),
                   read(segment_field(SegmentPart::Base, index)),
                   read(segment_field(SegmentPart::Limit, index)),
                   read(segment_field(SegmentPart::AccessRights, index)));
    }
    log::error("vmx:   gdtr {:#x}/{:#x} idtr {:#x}/{:#x} entry interruption {:#x}",
               read(Field::GuestGdtrBase), read(Field::GuestGdtrLimit), read(Field::GuestIdtrBase),
               read(Field::GuestIdtrLimit), read(Field::VmEntryInterruptionInfo));
    log::error("vmx:   host cr0 {:#x} cr3 {:#x} cr4 {:#x} rip {:#x} rsp {:#x} efer {:#x} pat {:#x}",
               read(Field::HostCr0), read(Field::HostCr3), read(Field::HostCr4), read(Field::HostRip),
               read(Field::HostRsp), read(Field::HostEfer), read(Field::HostPat));
    log::error("vmx:   host fs {:#x} gs {:#x} tr {:#x} gdtr {:#x} idtr {:#x}", read(Field::HostFsBase),
               read(Field::HostGsBase), read(Field::HostTrBase), read(Field::HostGdtrBase),
               read(Field::HostIdtrBase));
    log::error("vmx:   controls pin {:#x} primary {:#x} secondary {:#x} exit {:#x} entry {:#x} eptp {:#x} vpid {}",
               read(Field::PinBasedControls), read(Field::PrimaryProcessorControls),
               read(Field::SecondaryProcessorControls), read(Field::VmExitControls),
               read(Field::VmEntryControls), read(Field::EptPointer), read(Field::VirtualProcessorId));
}

// Fills `info`; false when the backend completed the exit itself and the guest runs on. The
// core reads only the union member the reason names, and the failure text only for
// InvalidState.
bool VmxVcpu::decode_exit(u32 reason, ExitInfo& info) {
    const u32 basic = reason & kBasicExitMask;
    info.hardware_code = basic;
    // These exits have no exit qualification: the CPU clears it (SDM Vol. 3C 28.2.1), so it
    // is not read.
    info.qualification = 0;
    switch (static_cast<BasicExit>(basic)) {
        case BasicExit::Cpuid: info.reason = ExitReason::Cpuid; return true;
        case BasicExit::Rdmsr: info.reason = ExitReason::MsrRead; return true;
        case BasicExit::Wrmsr: info.reason = ExitReason::MsrWrite; return true;
        case BasicExit::Vmcall: info.reason = ExitReason::Hypercall; return true;
        case BasicExit::ExternalInterrupt: info.reason = ExitReason::ExternalInterrupt; return true;
        case BasicExit::TripleFault: info.reason = ExitReason::TripleFault; return true;
        case BasicExit::InterruptWindow: info.reason = ExitReason::InterruptWindow; return true;
        case BasicExit::Hlt: info.reason = ExitReason::Hlt; return true;
        case BasicExit::Xsetbv: info.reason = ExitReason::Xsetbv; return true;
        case BasicExit::IoInstruction: {
            // Exit qualification for I/O instructions (SDM Vol. 3C table 28-5).
            const u64 q = read(Field::ExitQualification);
            info.qualification = q;
            info.reason = ExitReason::Io;
            info.io = IoExit{static_cast<u16>(q >> 16), static_cast<u8>((q & 7) + 1), (q & 8) != 0,
                             (q & 16) != 0, (q & 32) != 0};
            return true;
        }
        default: return decode_rare_exit(info);
    }
}

[[gnu::noinline]] bool VmxVcpu::decode_rare_exit(ExitInfo& info) {
    info.qualification = read(Field::ExitQualification);
    const u64 q = info.qualification;
    switch (static_cast<BasicExit>(info.hardware_code)) {
        case BasicExit::ExceptionOrNmi: return decode_exception_or_nmi(info);
        case BasicExit::Invlpg: info.reason = ExitReason::Invlpg; return true;
        case BasicExit::ControlRegisterAccess: return complete_cr_access(info);
        case BasicExit::EptViolation:
        case BasicExit::EptMisconfiguration: {
            // Bits 2:0 of an EPT-violation qualification: the access was a read, write, fetch
            // (SDM Vol. 3C table 28-7). A misconfiguration has no qualification.
            const bool violation = info.hardware_code == static_cast<u32>(BasicExit::EptViolation);
            info.reason = ExitReason::Stage2Fault;
            info.stage2 = Stage2FaultExit{read(Field::GuestPhysicalAddress), violation && (q & 1),
                                          violation && (q & 2), violation && (q & 4), !violation};
            return true;
        }
        default: info.reason = ExitReason::Other; return true;
    }
}

bool VmxVcpu::decode_exception_or_nmi(ExitInfo& info) {
    const u32 interrupt = static_cast<u32>(read(Field::ExitInterruptionInfo));
    const u8 vector = interrupt & interruption::kVectorMask;
    if (interruption::type_of(interrupt) == interruption::Type::Nmi) {
        reflect_to_host(vector);
        info.reason = ExitReason::ExternalInterrupt;
        return true;
    }
    if (vector == kMachineCheckVector) reflect_to_host(vector);
    const bool has_error_code = interrupt & interruption::kErrorCodeValid;
    info.reason = ExitReason::Exception;
    info.exception = ExceptionExit{vector, has_error_code,
                                   has_error_code ? static_cast<u32>(read(Field::ExitInterruptionErrorCode)) : 0};
    return true;
}

// The event whose delivery the exit interrupted goes into the next entry instead (SDM Vol. 3C
// 28.2.4); inject_exception replaces it.
[[gnu::noinline]] void VmxVcpu::requeue_interrupted_event(u32 vectoring) {
    write(Field::VmEntryInterruptionInfo,
          vectoring & (interruption::kVectorMask | interruption::kTypeMask |
                       interruption::kErrorCodeValid | interruption::kValid));
    if (vectoring & interruption::kErrorCodeValid) {
        write(Field::VmEntryExceptionErrorCode, read(Field::IdtVectoringErrorCode));
    }
    if (interruption::needs_instruction_length(interruption::type_of(vectoring))) {
        write(Field::VmEntryInstructionLength, read(Field::ExitInstructionLength));
    }
}

// A control-register access exits only for what the backend owns: CR8, and the CR0/CR4 bits of
// the guest/host masks. It completes the access unless the write needs the PAE PDPTEs loaded
// from guest memory, which the core does. Returns false when completed.
bool VmxVcpu::complete_cr_access(ExitInfo& info) {
    const u64 q = info.qualification;
    const auto cr = static_cast<ControlRegister>(q & 0xf);
    const auto access = static_cast<CrAccess>((q >> 4) & 3);
    const auto gpr = static_cast<Gpr>((q >> 8) & 0xf);
    info.reason = ExitReason::ControlRegister;
    info.control_register = ControlRegisterExit{cr, access != CrAccess::MovFrom, gpr};
    // Outside 64-bit mode MOV to CR takes the low 32 bits of the register.
    const u64 source = in_64bit_mode() ? this->gpr(gpr) : static_cast<u32>(this->gpr(gpr));

    CrWrite outcome = CrWrite::NeedsCore;
    if (cr == ControlRegister::Cr8 && access == CrAccess::MovFrom) {
        set_gpr(gpr, cr8_);
        outcome = CrWrite::Done;
    } else if (cr == ControlRegister::Cr8 && access == CrAccess::MovTo) {
        if (source & ~kCr8Bits) {
            outcome = CrWrite::Faulted;
        } else {
            cr8_ = source;
            outcome = CrWrite::Done;
        }
    } else if (cr == ControlRegister::Cr0 && access == CrAccess::MovTo) {
        outcome = write_cr0_checked(source);
    } else if (cr == ControlRegister::Cr0 && access == CrAccess::Clts) {
        outcome = write_cr0_checked(guest_cr0() & ~kCr0Ts);
    } else if (cr == ControlRegister::Cr0 && access == CrAccess::Lmsw) {
        const u64 old = guest_cr0();
        const u64 lmsw_source = (q >> 16) & kCr0LmswBits;
        outcome = write_cr0_checked((old & ~kCr0LmswBits) | lmsw_source | (old & kCr0Pe));
    } else if (cr == ControlRegister::Cr4 && access == CrAccess::MovTo) {
        outcome = write_cr4_checked(source);
    }
    switch (outcome) {
        case CrWrite::Done: advance_rip(); return false;
        case CrWrite::Faulted: inject_exception(kGeneralProtectionVector, true, 0); return false;
        case CrWrite::NeedsCore: return true;
    }
    return true;
}

// MOV to CR0 with the checks that raise #GP (SDM Vol. 2B "MOV - Move to/from Control Registers").
VmxVcpu::CrWrite VmxVcpu::write_cr0_checked(u64 value) {
    const u64 old = guest_cr0();
    const u64 efer = read(Field::GuestEfer);
    const u64 cr4 = guest_cr4();
    const bool enables_paging = (value & kCr0Pg) && !(old & kCr0Pg);
    const bool disables_paging = !(value & kCr0Pg) && (old & kCr0Pg);
    if ((value & ~cr0_bits().allowed) || ((value & kCr0Pg) && !(value & kCr0Pe)) ||
        ((value & kCr0Nw) && !(value & kCr0Cd)) ||
        (enables_paging && (efer & kEferLme) && !(cr4 & kCr4Pae)) ||
        (disables_paging && in_64bit_mode())) {
        return CrWrite::Faulted;
    }
    // Changing PG, CD or NW with PAE paging (not long mode) in effect reloads the PDPTEs from
    // guest memory (SDM Vol. 3A "PDPTE Registers").
    const bool pae_paging = (value & kCr0Pg) && (cr4 & kCr4Pae) && !(efer & kEferLme);
    if (pae_paging && ((value ^ old) & (kCr0Pg | kCr0Cd | kCr0Nw))) return CrWrite::NeedsCore;
    load_cr0(value);
    return CrWrite::Done;
}

VmxVcpu::CrWrite VmxVcpu::write_cr4_checked(u64 value) {
    const u64 old = guest_cr4();
    const u64 efer = read(Field::GuestEfer);
    // The guest has no VMX of its own: VMXE stays 0 as if CPUID said so.
    if ((value & (~cr4_bits().allowed | x86::kCr4Vmxe)) || ((efer & kEferLma) && !(value & kCr4Pae))) {
        return CrWrite::Faulted;
    }
    const bool pae_paging = (guest_cr0() & kCr0Pg) && (value & kCr4Pae) && !(efer & kEferLma);
    if (pae_paging && ((value ^ old) & (kCr4Pae | kCr4Pge | kCr4Pse | kCr4Smep))) return CrWrite::NeedsCore;
    load_cr4(value);
    return CrWrite::Done;
}

}  // namespace

Vcpu* create_vmx_vcpu(const Stage2Binding& stage2, u16 vpid, const EntryState& entry) {
    VmxVcpu* vcpu = heap().create<VmxVcpu>(this_cpu()->index);
    if (!vcpu) {
        log::error("vmx: no memory for a vCPU");
        return nullptr;
    }
    if (!vcpu->init(stage2, vpid, entry)) {
        heap().destroy(vcpu);
        return nullptr;
    }
    return vcpu;
}

void destroy_vmx_vcpu(Vcpu* vcpu) { heap().destroy(static_cast<VmxVcpu*>(vcpu)); }

}  // namespace lamina
