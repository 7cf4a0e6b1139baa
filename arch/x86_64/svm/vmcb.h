// The virtual machine control block (AMD APM Vol. 2 appendix B): one 4 KiB page, the control
// area at offset 0 and the guest's state save area at 0x400, plus the encodings of the fields
// the SVM backend uses (intercepts, exit codes, appendix C; event injection, 15.20; clean
// bits, 15.15.3).
#pragma once

#include <lamina/types.h>

namespace lamina::svm {

// Intercept vector 3 (control area 0x0c), APM Vol. 2 table B-1.
namespace intercept3 {
constexpr u32 kIntr = 1u << 0;
constexpr u32 kNmi = 1u << 1;
constexpr u32 kVintr = 1u << 4;
constexpr u32 kCpuid = 1u << 18;
constexpr u32 kHlt = 1u << 24;
constexpr u32 kInvlpga = 1u << 26;
constexpr u32 kIoio = 1u << 27;
constexpr u32 kMsr = 1u << 28;
constexpr u32 kShutdown = 1u << 31;
}  // namespace intercept3

// Intercept vector 4 (control area 0x10).
namespace intercept4 {
constexpr u32 kVmrun = 1u << 0;
constexpr u32 kVmmcall = 1u << 1;
constexpr u32 kVmload = 1u << 2;
constexpr u32 kVmsave = 1u << 3;
constexpr u32 kStgi = 1u << 4;
constexpr u32 kClgi = 1u << 5;
constexpr u32 kSkinit = 1u << 6;
constexpr u32 kXsetbv = 1u << 13;
}  // namespace intercept4

// TLB_CONTROL (15.16.1).
namespace tlb_control {
constexpr u8 kNothing = 0;
constexpr u8 kFlushAll = 1;
constexpr u8 kFlushAsid = 3;  // needs flush-by-ASID (CPUID Fn8000_000A EDX[6])
}  // namespace tlb_control

// The virtual interrupt control word (control area 0x60).
constexpr u64 kVintrTprMask = 0xf;
constexpr u64 kVintrIrq = u64{1} << 8;         // V_IRQ: a virtual interrupt is pending
constexpr u64 kVintrPriorityMask = u64{0xf} << 16;  // V_INTR_PRIO
constexpr u64 kVintrIgnoreTpr = u64{1} << 20;  // V_IGN_TPR
constexpr u64 kVintrMasking = u64{1} << 24;

constexpr u64 kInterruptShadow = u64{1} << 0;  // control area 0x68
constexpr u64 kNestedPagingEnable = u64{1} << 0;  // control area 0x90

// EVENTINJ and EXITINTINFO share one layout (15.20, 15.7.2).
namespace event {
constexpr u64 kVectorMask = 0xff;
constexpr unsigned kTypeShift = 8;
constexpr u64 kTypeMask = u64{7} << kTypeShift;
constexpr u64 kTypeInterrupt = u64{0} << kTypeShift;
constexpr u64 kTypeNmi = u64{2} << kTypeShift;
constexpr u64 kTypeException = u64{3} << kTypeShift;
constexpr u64 kTypeSoftwareInterrupt = u64{4} << kTypeShift;
constexpr u64 kErrorCodeValid = u64{1} << 11;
constexpr u64 kValid = u64{1} << 31;
constexpr unsigned kErrorCodeShift = 32;
}  // namespace event

// The VMCB clean bits (15.15.3): a set bit lets the CPU keep its cached copy of that group.
namespace clean {
constexpr u32 kIntercepts = 1u << 0;  // intercept vectors, TSC offset, pause filter
constexpr u32 kIopm = 1u << 1;        // IOPM and MSRPM base addresses
constexpr u32 kAsid = 1u << 2;
constexpr u32 kTpr = 1u << 3;         // the virtual interrupt control word
constexpr u32 kNestedPaging = 1u << 4;  // NP_ENABLE, nCR3, G_PAT
constexpr u32 kCr = 1u << 5;          // CR0, CR3, CR4, EFER
constexpr u32 kDr = 1u << 6;          // DR6, DR7
constexpr u32 kDt = 1u << 7;          // GDTR, IDTR
constexpr u32 kSeg = 1u << 8;         // CS, DS, SS, ES, CPL
constexpr u32 kCr2 = 1u << 9;
constexpr u32 kLbr = 1u << 10;
constexpr u32 kAvic = 1u << 11;
constexpr u32 kAll = (1u << 12) - 1;
}  // namespace clean

// Exit codes (appendix C).
namespace exit_code {
constexpr u64 kCrReadFirst = 0x00;   // 0x00-0x0f: CRn reads
constexpr u64 kCrWriteFirst = 0x10;  // 0x10-0x1f: CRn writes
constexpr u64 kCrWriteLast = 0x1f;
constexpr u64 kExceptionFirst = 0x40;  // 0x40 + vector
constexpr u64 kExceptionLast = 0x5f;
constexpr u64 kIntr = 0x60;
constexpr u64 kNmi = 0x61;
constexpr u64 kVintr = 0x64;
constexpr u64 kCpuid = 0x72;
constexpr u64 kHlt = 0x78;
constexpr u64 kInvlpg = 0x79;
constexpr u64 kIoio = 0x7b;
constexpr u64 kMsr = 0x7c;
constexpr u64 kShutdown = 0x7f;
constexpr u64 kVmmcall = 0x81;
constexpr u64 kXsetbv = 0x8d;
constexpr u64 kNestedPageFault = 0x400;
constexpr u64 kInvalid = ~u64{0};  // VMEXIT_INVALID: VMRUN refused the VMCB
}  // namespace exit_code

// QEMU 7.2 stores exit codes as 32-bit values (its VMEXIT_INVALID reads 0xffffffff), so only
// the low half is compared, as KVM does.
constexpr bool is_vmexit_invalid(u64 code) {
    return static_cast<u32>(code) == static_cast<u32>(exit_code::kInvalid);
}

// EXITINFO1 of an IOIO intercept (15.10.2).
namespace ioio {
constexpr u64 kIn = 1u << 0;
constexpr u64 kString = 1u << 2;
constexpr u64 kRep = 1u << 3;
constexpr unsigned kSizeShift = 4;  // one-hot: bit 4 = 8-bit, 5 = 16-bit, 6 = 32-bit
constexpr u64 kSizeMask = u64{7} << kSizeShift;
constexpr unsigned kPortShift = 16;
}  // namespace ioio

// EXITINFO1 of a nested page fault: the page-fault error code (15.25.6).
namespace npf {
constexpr u64 kPresent = 1u << 0;
constexpr u64 kWrite = 1u << 1;
constexpr u64 kUser = 1u << 2;
constexpr u64 kReservedBit = 1u << 3;
constexpr u64 kInstructionFetch = 1u << 4;
}  // namespace npf

// EXITINFO1 of a CR access with decode assists (15.33.1): the GPR, valid when bit 63 is set.
constexpr u64 kCrAccessGprValid = u64{1} << 63;
constexpr u64 kCrAccessGprMask = 0xf;

// EXITINFO1 of an MSR intercept.
constexpr u64 kMsrWrite = 1;

struct VmcbSegment {
    u16 selector;
    u16 attributes;  // type[3:0] S[4] DPL[6:5] P[7] AVL[8] L[9] D/B[10] G[11]
    u32 limit;       // expanded (granularity applied)
    u64 base;
};
static_assert(sizeof(VmcbSegment) == 16);

// The VMCB packs the segment attributes of the VMX access-rights layout that the neutral
// Segment uses (type[3:0] S[4] DPL[6:5] P[7] AVL[12] L[13] D/B[14] G[15]) into 12 bits: bits
// 0-7 stay, VMX bits 12-15 move to 8-11. Each layout leaves the other's upper nibble clear, so
// swapping the two nibbles converts either way.
constexpr u16 kVmcbAttributeLong = 1u << 9;

constexpr u16 convert_segment_attributes(u16 attributes) {
    return static_cast<u16>((attributes & 0x00ff) | (attributes & 0x0f00) << 4 | (attributes & 0xf000) >> 4);
}
static_assert(convert_segment_attributes(0xc09b) == 0x0c9b);  // flat 32-bit code, VMX to VMCB
static_assert(convert_segment_attributes(0x0a9b) == 0xa09b);  // 64-bit code, VMCB to VMX

struct VmcbControl {
    u16 intercept_cr_read;
    u16 intercept_cr_write;
    u16 intercept_dr_read;
    u16 intercept_dr_write;
    u32 intercept_exceptions;
    u32 intercept3;
    u32 intercept4;
    u32 intercept5;
    u8 reserved_018[0x3c - 0x18];
    u16 pause_filter_threshold;
    u16 pause_filter_count;
    u64 iopm_base;
    u64 msrpm_base;
    u64 tsc_offset;
    u32 asid;
    u8 tlb_control;
    u8 reserved_05d[3];
    u64 virtual_interrupt;
    u64 interrupt_state;
    u64 exit_code;
    u64 exit_info1;
    u64 exit_info2;
    u64 exit_interrupt_info;
    u64 nested_control;
    u64 avic_apic_bar;
    u64 ghcb;
    u64 event_injection;
    u64 nested_cr3;
    u64 virtualization_extensions;
    u32 clean_bits;
    u32 reserved_0c4;
    u64 next_rip;
    u8 instruction_length;
    u8 instruction_bytes[15];
    u8 reserved_0e0[0x400 - 0xe0];
};

#define LAMINA_VMCB_OFFSET(type, field, offset) static_assert(__builtin_offsetof(type, field) == offset)
LAMINA_VMCB_OFFSET(VmcbControl, intercept_cr_read, 0x000);
LAMINA_VMCB_OFFSET(VmcbControl, intercept_cr_write, 0x002);
LAMINA_VMCB_OFFSET(VmcbControl, intercept_dr_read, 0x004);
LAMINA_VMCB_OFFSET(VmcbControl, intercept_dr_write, 0x006);
LAMINA_VMCB_OFFSET(VmcbControl, intercept_exceptions, 0x008);
LAMINA_VMCB_OFFSET(VmcbControl, intercept3, 0x00c);
LAMINA_VMCB_OFFSET(VmcbControl, intercept4, 0x010);
LAMINA_VMCB_OFFSET(VmcbControl, intercept5, 0x014);
LAMINA_VMCB_OFFSET(VmcbControl, pause_filter_threshold, 0x03c);
LAMINA_VMCB_OFFSET(VmcbControl, pause_filter_count, 0x03e);
LAMINA_VMCB_OFFSET(VmcbControl, iopm_base, 0x040);
LAMINA_VMCB_OFFSET(VmcbControl, msrpm_base, 0x048);
LAMINA_VMCB_OFFSET(VmcbControl, tsc_offset, 0x050);
LAMINA_VMCB_OFFSET(VmcbControl, asid, 0x058);
LAMINA_VMCB_OFFSET(VmcbControl, tlb_control, 0x05c);
LAMINA_VMCB_OFFSET(VmcbControl, virtual_interrupt, 0x060);
LAMINA_VMCB_OFFSET(VmcbControl, interrupt_state, 0x068);
LAMINA_VMCB_OFFSET(VmcbControl, exit_code, 0x070);
LAMINA_VMCB_OFFSET(VmcbControl, exit_info1, 0x078);
LAMINA_VMCB_OFFSET(VmcbControl, exit_info2, 0x080);
LAMINA_VMCB_OFFSET(VmcbControl, exit_interrupt_info, 0x088);
LAMINA_VMCB_OFFSET(VmcbControl, nested_control, 0x090);
LAMINA_VMCB_OFFSET(VmcbControl, avic_apic_bar, 0x098);
LAMINA_VMCB_OFFSET(VmcbControl, ghcb, 0x0a0);
LAMINA_VMCB_OFFSET(VmcbControl, event_injection, 0x0a8);
LAMINA_VMCB_OFFSET(VmcbControl, nested_cr3, 0x0b0);
LAMINA_VMCB_OFFSET(VmcbControl, virtualization_extensions, 0x0b8);
LAMINA_VMCB_OFFSET(VmcbControl, clean_bits, 0x0c0);
LAMINA_VMCB_OFFSET(VmcbControl, next_rip, 0x0c8);
LAMINA_VMCB_OFFSET(VmcbControl, instruction_length, 0x0d0);
LAMINA_VMCB_OFFSET(VmcbControl, instruction_bytes, 0x0d1);
static_assert(sizeof(VmcbControl) == 0x400);

// The state save area, offsets relative to its start (VMCB offset 0x400), APM Vol. 2 table B-2.
struct VmcbSave {
    VmcbSegment es, cs, ss, ds, fs, gs;
    VmcbSegment gdtr;  // selector and attributes unused
    VmcbSegment ldtr;
    VmcbSegment idtr;  // selector and attributes unused
    VmcbSegment tr;
    u8 reserved_0a0[0xcb - 0xa0];
    u8 cpl;
    u32 reserved_0cc;
    u64 efer;
    u8 reserved_0d8[0x148 - 0xd8];
    u64 cr4;
    u64 cr3;
    u64 cr0;
    u64 dr7;
    u64 dr6;
    u64 rflags;
    u64 rip;
    u8 reserved_180[0x1d8 - 0x180];
    u64 rsp;
    u64 s_cet;
    u64 ssp;
    u64 isst_addr;
    u64 rax;
    u64 star;
    u64 lstar;
    u64 cstar;
    u64 sfmask;
    u64 kernel_gs_base;
    u64 sysenter_cs;
    u64 sysenter_esp;
    u64 sysenter_eip;
    u64 cr2;
    u8 reserved_248[0x268 - 0x248];
    u64 g_pat;
    u64 debug_control;
    u64 branch_from;
    u64 branch_to;
    u64 last_exception_from;
    u64 last_exception_to;
    u8 reserved_298[0xc00 - 0x298];
};

LAMINA_VMCB_OFFSET(VmcbSave, es, 0x000);
LAMINA_VMCB_OFFSET(VmcbSave, cs, 0x010);
LAMINA_VMCB_OFFSET(VmcbSave, ss, 0x020);
LAMINA_VMCB_OFFSET(VmcbSave, ds, 0x030);
LAMINA_VMCB_OFFSET(VmcbSave, fs, 0x040);
LAMINA_VMCB_OFFSET(VmcbSave, gs, 0x050);
LAMINA_VMCB_OFFSET(VmcbSave, gdtr, 0x060);
LAMINA_VMCB_OFFSET(VmcbSave, ldtr, 0x070);
LAMINA_VMCB_OFFSET(VmcbSave, idtr, 0x080);
LAMINA_VMCB_OFFSET(VmcbSave, tr, 0x090);
LAMINA_VMCB_OFFSET(VmcbSave, cpl, 0x0cb);
LAMINA_VMCB_OFFSET(VmcbSave, efer, 0x0d0);
LAMINA_VMCB_OFFSET(VmcbSave, cr4, 0x148);
LAMINA_VMCB_OFFSET(VmcbSave, cr3, 0x150);
LAMINA_VMCB_OFFSET(VmcbSave, cr0, 0x158);
LAMINA_VMCB_OFFSET(VmcbSave, dr7, 0x160);
LAMINA_VMCB_OFFSET(VmcbSave, dr6, 0x168);
LAMINA_VMCB_OFFSET(VmcbSave, rflags, 0x170);
LAMINA_VMCB_OFFSET(VmcbSave, rip, 0x178);
LAMINA_VMCB_OFFSET(VmcbSave, rsp, 0x1d8);
LAMINA_VMCB_OFFSET(VmcbSave, s_cet, 0x1e0);
LAMINA_VMCB_OFFSET(VmcbSave, ssp, 0x1e8);
LAMINA_VMCB_OFFSET(VmcbSave, isst_addr, 0x1f0);
LAMINA_VMCB_OFFSET(VmcbSave, rax, 0x1f8);
LAMINA_VMCB_OFFSET(VmcbSave, star, 0x200);
LAMINA_VMCB_OFFSET(VmcbSave, lstar, 0x208);
LAMINA_VMCB_OFFSET(VmcbSave, cstar, 0x210);
LAMINA_VMCB_OFFSET(VmcbSave, sfmask, 0x218);
LAMINA_VMCB_OFFSET(VmcbSave, kernel_gs_base, 0x220);
LAMINA_VMCB_OFFSET(VmcbSave, sysenter_cs, 0x228);
LAMINA_VMCB_OFFSET(VmcbSave, sysenter_esp, 0x230);
LAMINA_VMCB_OFFSET(VmcbSave, sysenter_eip, 0x238);
LAMINA_VMCB_OFFSET(VmcbSave, cr2, 0x240);
LAMINA_VMCB_OFFSET(VmcbSave, g_pat, 0x268);
LAMINA_VMCB_OFFSET(VmcbSave, debug_control, 0x270);
LAMINA_VMCB_OFFSET(VmcbSave, branch_from, 0x278);
LAMINA_VMCB_OFFSET(VmcbSave, branch_to, 0x280);
LAMINA_VMCB_OFFSET(VmcbSave, last_exception_from, 0x288);
LAMINA_VMCB_OFFSET(VmcbSave, last_exception_to, 0x290);
static_assert(sizeof(VmcbSave) == 0xc00);

// The same layout serves the guest's VMCB and the host area that VMSAVE/VMLOAD use.
struct Vmcb {
    VmcbControl control;
    VmcbSave save;
};
LAMINA_VMCB_OFFSET(Vmcb, save, 0x400);
static_assert(sizeof(Vmcb) == 4 * KiB);
#undef LAMINA_VMCB_OFFSET

}  // namespace lamina::svm
