// Which host CPUID feature bits a guest may see, and why the others stay hidden. Bits are named
// as in the SDM (Vol. 2A, CPUID) and the APM (Vol. 3, Appendix E).
//
// The policy passes an allow-list, not a deny-list: a feature that a future CPU adds stays
// hidden until someone has checked that a guest can use it under Lamina. The reasons a bit is
// hidden come in a few kinds, named in the comments below:
//   [hv]   the hypervisor owns it (VMX, SVM, SMX): nested virtualization is not offered.
//   [msr]  its interface is an MSR that the vCPU does not virtualize yet; a guest that used it
//          would take #GP (or, for MSRs that steer the CPU, change the host).
//   [vmx]  under VMX its instruction raises #UD unless a VM-execution control enables it, and
//          the backends do not set those controls yet (RDTSCP/RDPID, INVPCID, TPAUSE/UMWAIT).
//   [apic] it belongs to the virtual local APIC, which comes later.
//   [xs]   its state needs an XSAVE component the policy does not allow (see kXcr0Permitted).
//   [pm]   power or thermal management, which belongs to the host.
//   [perf] performance monitoring or tracing, not virtualized.
#pragma once

#include <lamina/types.h>

namespace lamina::cpuid {

enum class Register : u8 { Eax, Ebx, Ecx, Edx };

namespace leaf1_ecx {
constexpr u32 kSse3 = 1u << 0;
constexpr u32 kPclmulqdq = 1u << 1;
// hidden: DTES64 2, DS-CPL 4 [perf]; MONITOR 3 [pm] (MONITOR/MWAIT would idle the host CPU);
// VMX 5, SMX 6 [hv]; EST 7, TM2 8 [pm]; CNXT-ID 10, SDBG 11, xTPR 14 [msr]; PDCM 15 [perf];
// DCA 18 [msr]; x2APIC 21, TSC-deadline 24 [apic]
constexpr u32 kSsse3 = 1u << 9;
constexpr u32 kFma = 1u << 12;
constexpr u32 kCmpxchg16b = 1u << 13;
constexpr u32 kPcid = 1u << 17;
constexpr u32 kSse41 = 1u << 19;
constexpr u32 kSse42 = 1u << 20;
constexpr u32 kMovbe = 1u << 22;
constexpr u32 kPopcnt = 1u << 23;
constexpr u32 kAes = 1u << 25;
constexpr u32 kXsave = 1u << 26;
constexpr u32 kOsxsave = 1u << 27;  // mirrors the guest's CR4.OSXSAVE
constexpr u32 kAvx = 1u << 28;
constexpr u32 kF16c = 1u << 29;
constexpr u32 kRdrand = 1u << 30;
constexpr u32 kHypervisor = 1u << 31;  // set: the guest runs under a hypervisor
}  // namespace leaf1_ecx

namespace leaf1_edx {
constexpr u32 kFpu = 1u << 0;
constexpr u32 kVme = 1u << 1;
constexpr u32 kDe = 1u << 2;
constexpr u32 kPse = 1u << 3;
constexpr u32 kTsc = 1u << 4;
constexpr u32 kMsr = 1u << 5;
constexpr u32 kPae = 1u << 6;
constexpr u32 kMce = 1u << 7;
constexpr u32 kCx8 = 1u << 8;
constexpr u32 kApic = 1u << 9;
constexpr u32 kSep = 1u << 11;
constexpr u32 kMtrr = 1u << 12;
constexpr u32 kPge = 1u << 13;
constexpr u32 kMca = 1u << 14;
constexpr u32 kCmov = 1u << 15;
constexpr u32 kPat = 1u << 16;
constexpr u32 kPse36 = 1u << 17;
// hidden: PSN 18 (a serial number identifies the host machine); DS 21 [perf];
// ACPI 22, TM 29, PBE 31 [pm]
constexpr u32 kClflush = 1u << 19;
constexpr u32 kMmx = 1u << 23;
constexpr u32 kFxsr = 1u << 24;
constexpr u32 kSse = 1u << 25;
constexpr u32 kSse2 = 1u << 26;
constexpr u32 kSelfSnoop = 1u << 27;
constexpr u32 kHtt = 1u << 28;  // set: EBX[23:16] is valid
}  // namespace leaf1_edx

namespace leaf7_ebx {
constexpr u32 kFsgsbase = 1u << 0;
// hidden: TSC_ADJUST 1 [msr]; SGX 2 (enclaves need the hypervisor's EPC management);
// INVPCID 10 [vmx]; RDT-M 12, RDT-A 15 [msr] (cache QoS is the host's); MPX 14 [xs] (deprecated);
// Intel PT 25 [perf]
constexpr u32 kBmi1 = 1u << 3;
constexpr u32 kHle = 1u << 4;
constexpr u32 kAvx2 = 1u << 5;
constexpr u32 kFdpExceptionOnly = 1u << 6;
constexpr u32 kSmep = 1u << 7;
constexpr u32 kBmi2 = 1u << 8;
constexpr u32 kErms = 1u << 9;
constexpr u32 kRtm = 1u << 11;
constexpr u32 kFpuCsDsDeprecated = 1u << 13;
constexpr u32 kAvx512f = 1u << 16;
constexpr u32 kAvx512dq = 1u << 17;
constexpr u32 kRdseed = 1u << 18;
constexpr u32 kAdx = 1u << 19;
constexpr u32 kSmap = 1u << 20;
constexpr u32 kAvx512ifma = 1u << 21;
constexpr u32 kClflushopt = 1u << 23;
constexpr u32 kClwb = 1u << 24;
constexpr u32 kAvx512pf = 1u << 26;
constexpr u32 kAvx512er = 1u << 27;
constexpr u32 kAvx512cd = 1u << 28;
constexpr u32 kSha = 1u << 29;
constexpr u32 kAvx512bw = 1u << 30;
constexpr u32 kAvx512vl = 1u << 31;
}  // namespace leaf7_ebx

namespace leaf7_ecx {
constexpr u32 kPrefetchwt1 = 1u << 0;
constexpr u32 kAvx512vbmi = 1u << 1;
constexpr u32 kUmip = 1u << 2;
// hidden: PKU 3 [xs] (PKRU), OSPKE 4 (follows PKU); WAITPKG 5 [vmx]; CET_SS 7 [xs] (supervisor
// state); TME 13 [msr]; MAWAU 17-21 [xs] (MPX); RDPID 22 [vmx]; Key Locker 23 (needs
// LOADIWKEY exiting); BUS_LOCK_DETECT 24 [msr]; ENQCMD 29 [xs] (PASID); SGX_LC 30 (SGX);
// PKS 31 [msr]
constexpr u32 kAvx512vbmi2 = 1u << 6;
constexpr u32 kGfni = 1u << 8;
constexpr u32 kVaes = 1u << 9;
constexpr u32 kVpclmulqdq = 1u << 10;
constexpr u32 kAvx512vnni = 1u << 11;
constexpr u32 kAvx512bitalg = 1u << 12;
constexpr u32 kAvx512vpopcntdq = 1u << 14;
constexpr u32 kLa57 = 1u << 16;
constexpr u32 kCldemote = 1u << 25;
constexpr u32 kMovdiri = 1u << 27;
constexpr u32 kMovdir64b = 1u << 28;
}  // namespace leaf7_ecx

namespace leaf7_edx {
constexpr u32 kAvx512_4vnniw = 1u << 2;
constexpr u32 kAvx512_4fmaps = 1u << 3;
constexpr u32 kFsrm = 1u << 4;
// hidden: UINTR 5 [xs]; SRBDS_CTRL 9, TSX_FORCE_ABORT 13 [msr]; Hybrid 15 (the guest's CPUs are
// alike); PCONFIG 18 (memory encryption keys are the host's); Arch LBR 19 [perf];
// CET_IBT 20 [xs]; AMX-BF16 22, AMX-TILE 24, AMX-INT8 25 [xs] (tile state, XFD);
// IBRS/IBPB 26, STIBP 27, L1D_FLUSH 28, ARCH_CAPABILITIES 29, CORE_CAPABILITIES 30, SSBD 31
// [msr]: the speculation-control MSRs, to expose together once the MSR layer passes them through
constexpr u32 kAvx512vp2intersect = 1u << 8;
constexpr u32 kMdClear = 1u << 10;
constexpr u32 kRtmAlwaysAbort = 1u << 11;
constexpr u32 kSerialize = 1u << 14;
constexpr u32 kTsxldtrk = 1u << 16;
constexpr u32 kAvx512fp16 = 1u << 23;
}  // namespace leaf7_edx

namespace ext1_ecx {
constexpr u32 kLahfSahf = 1u << 0;
// hidden: CmpLegacy 1 (the topology is described by Fn8000_0008 ECX); SVM 2 [hv];
// ExtApicSpace 3, AltMovCr8 4 [apic]; OSVW 9 [msr]; IBS 10 [perf]; SKINIT 12 [hv];
// WDT 13 [pm]; LWP 15 [xs]; TCE 17 [msr] (EFER.TCE); NodeId 19 [msr];
// TopologyExtensions 22 (its leaves 8000_001D/1E lie past the clamp); PerfCtrExtCore 23,
// PerfCtrExtNB 24, DataBreakpointExt 26, PerfTsc 27, PerfCtrExtLLC 28 [perf]; MONITORX 29 [pm];
// AddrMaskExt 30 [msr]
constexpr u32 kAbm = 1u << 5;  // LZCNT
constexpr u32 kSse4a = 1u << 6;
constexpr u32 kMisalignedSse = 1u << 7;
constexpr u32 kPrefetchw = 1u << 8;
constexpr u32 kXop = 1u << 11;
constexpr u32 kFma4 = 1u << 16;
constexpr u32 kTbm = 1u << 21;
}  // namespace ext1_ecx

// Bits 0-17 and 23-24 repeat leaf 1 EDX on AMD (the same features, passed alike).
namespace ext1_edx {
constexpr u32 kSyscall = 1u << 11;
constexpr u32 kNx = 1u << 20;
constexpr u32 kMmxExt = 1u << 22;
constexpr u32 kFfxsr = 1u << 25;
constexpr u32 kPage1g = 1u << 26;
// hidden: RDTSCP 27 [vmx] (and IA32_TSC_AUX [msr])
constexpr u32 kLongMode = 1u << 29;
constexpr u32 k3dnowExt = 1u << 30;
constexpr u32 k3dnow = 1u << 31;
}  // namespace ext1_edx

namespace ext7_edx {
// hidden: everything else (frequency and power reporting) [pm]
constexpr u32 kInvariantTsc = 1u << 8;
}  // namespace ext7_edx

namespace ext8_ebx {
constexpr u32 kClzero = 1u << 0;
constexpr u32 kRestoreFpErrorPointers = 1u << 2;
constexpr u32 kWbnoinvd = 1u << 9;
// hidden: IRPERF 1 [perf]; INVLPGB 3 (broadcast TLB flushes reach other guests' CPUs);
// RDPRU 4 [msr]; MCOMMIT 8 [msr] (EFER.MCOMMIT); the speculation controls (IBPB 12 and up)
// [msr], as for leaf 7 EDX
}  // namespace ext8_ebx

// XSAVE state components (XCR0 bits, SDM Vol. 1 13.1).
namespace xcr0 {
constexpr u64 kX87 = u64{1} << 0;
constexpr u64 kSse = u64{1} << 1;
constexpr u64 kAvx = u64{1} << 2;
constexpr u64 kOpmask = u64{1} << 5;
constexpr u64 kZmmHi256 = u64{1} << 6;
constexpr u64 kHi16Zmm = u64{1} << 7;
constexpr u64 kAvx512 = kOpmask | kZmmHi256 | kHi16Zmm;
}  // namespace xcr0

// The components a guest may enable, where the host has them. Left out: MPX (3, 4; deprecated),
// PKRU (9; PKU is hidden) and AMX (17, 18; tile data needs XFD, which is not virtualized).
// Supervisor components (IA32_XSS) are out as well: XSAVES is hidden.
constexpr u64 kXcr0Permitted = xcr0::kX87 | xcr0::kSse | xcr0::kAvx | xcr0::kAvx512;

// Leaf 0Dh subleaf 1 EAX: XSAVE instruction variants.
namespace xsave_eax {
constexpr u32 kXsaveopt = 1u << 0;
constexpr u32 kXsavec = 1u << 1;
constexpr u32 kXgetbv1 = 1u << 2;  // XGETBV with ECX = 1 (XINUSE)
// hidden: XSAVES 3 [vmx] (and IA32_XSS [msr]); XFD 4 [msr] (IA32_XFD, for AMX)
}  // namespace xsave_eax

struct FeatureFilter {
    u32 leaf;
    u32 subleaf;
    Register reg;
    u32 passed;  // the host bits a guest may see; the rest read 0
};

inline constexpr FeatureFilter kFeatureFilters[] = {
    {0x1, 0, Register::Ecx,
     leaf1_ecx::kSse3 | leaf1_ecx::kPclmulqdq | leaf1_ecx::kSsse3 | leaf1_ecx::kFma |
         leaf1_ecx::kCmpxchg16b | leaf1_ecx::kPcid | leaf1_ecx::kSse41 | leaf1_ecx::kSse42 |
         leaf1_ecx::kMovbe | leaf1_ecx::kPopcnt | leaf1_ecx::kAes | leaf1_ecx::kXsave |
         leaf1_ecx::kAvx | leaf1_ecx::kF16c | leaf1_ecx::kRdrand},
    {0x1, 0, Register::Edx,
     leaf1_edx::kFpu | leaf1_edx::kVme | leaf1_edx::kDe | leaf1_edx::kPse | leaf1_edx::kTsc |
         leaf1_edx::kMsr | leaf1_edx::kPae | leaf1_edx::kMce | leaf1_edx::kCx8 |
         leaf1_edx::kApic | leaf1_edx::kSep | leaf1_edx::kMtrr | leaf1_edx::kPge |
         leaf1_edx::kMca | leaf1_edx::kCmov | leaf1_edx::kPat | leaf1_edx::kPse36 |
         leaf1_edx::kClflush | leaf1_edx::kMmx | leaf1_edx::kFxsr | leaf1_edx::kSse |
         leaf1_edx::kSse2 | leaf1_edx::kSelfSnoop},
    {0x7, 0, Register::Ebx,
     leaf7_ebx::kFsgsbase | leaf7_ebx::kBmi1 | leaf7_ebx::kHle | leaf7_ebx::kAvx2 |
         leaf7_ebx::kFdpExceptionOnly | leaf7_ebx::kSmep | leaf7_ebx::kBmi2 | leaf7_ebx::kErms |
         leaf7_ebx::kRtm | leaf7_ebx::kFpuCsDsDeprecated | leaf7_ebx::kAvx512f |
         leaf7_ebx::kAvx512dq | leaf7_ebx::kRdseed | leaf7_ebx::kAdx | leaf7_ebx::kSmap |
         leaf7_ebx::kAvx512ifma | leaf7_ebx::kClflushopt | leaf7_ebx::kClwb |
         leaf7_ebx::kAvx512pf | leaf7_ebx::kAvx512er | leaf7_ebx::kAvx512cd | leaf7_ebx::kSha |
         leaf7_ebx::kAvx512bw | leaf7_ebx::kAvx512vl},
    {0x7, 0, Register::Ecx,
     leaf7_ecx::kPrefetchwt1 | leaf7_ecx::kAvx512vbmi | leaf7_ecx::kUmip |
         leaf7_ecx::kAvx512vbmi2 | leaf7_ecx::kGfni | leaf7_ecx::kVaes | leaf7_ecx::kVpclmulqdq |
         leaf7_ecx::kAvx512vnni | leaf7_ecx::kAvx512bitalg | leaf7_ecx::kAvx512vpopcntdq |
         leaf7_ecx::kLa57 | leaf7_ecx::kCldemote | leaf7_ecx::kMovdiri | leaf7_ecx::kMovdir64b},
    {0x7, 0, Register::Edx,
     leaf7_edx::kAvx512_4vnniw | leaf7_edx::kAvx512_4fmaps | leaf7_edx::kFsrm |
         leaf7_edx::kAvx512vp2intersect | leaf7_edx::kMdClear | leaf7_edx::kRtmAlwaysAbort |
         leaf7_edx::kSerialize | leaf7_edx::kTsxldtrk | leaf7_edx::kAvx512fp16},
    {0x8000'0001, 0, Register::Ecx,
     ext1_ecx::kLahfSahf | ext1_ecx::kAbm | ext1_ecx::kSse4a | ext1_ecx::kMisalignedSse |
         ext1_ecx::kPrefetchw | ext1_ecx::kXop | ext1_ecx::kFma4 | ext1_ecx::kTbm},
    {0x8000'0001, 0, Register::Edx,
     (leaf1_edx::kFpu | leaf1_edx::kVme | leaf1_edx::kDe | leaf1_edx::kPse | leaf1_edx::kTsc |
      leaf1_edx::kMsr | leaf1_edx::kPae | leaf1_edx::kMce | leaf1_edx::kCx8 | leaf1_edx::kApic |
      leaf1_edx::kMtrr | leaf1_edx::kPge | leaf1_edx::kMca | leaf1_edx::kCmov |
      leaf1_edx::kPat | leaf1_edx::kPse36 | leaf1_edx::kMmx | leaf1_edx::kFxsr) |
         ext1_edx::kSyscall | ext1_edx::kNx | ext1_edx::kMmxExt | ext1_edx::kFfxsr |
         ext1_edx::kPage1g | ext1_edx::kLongMode | ext1_edx::k3dnowExt | ext1_edx::k3dnow},
    {0x8000'0007, 0, Register::Edx, ext7_edx::kInvariantTsc},
    {0x8000'0008, 0, Register::Ebx,
     ext8_ebx::kClzero | ext8_ebx::kRestoreFpErrorPointers | ext8_ebx::kWbnoinvd},
    {0xd, 1, Register::Eax, xsave_eax::kXsaveopt | xsave_eax::kXsavec | xsave_eax::kXgetbv1},
};

// Features that need XSAVE components: hidden unless the guest may enable all of `xcr0_bits`,
// so that a guest never sees an instruction set whose registers it cannot turn on.
struct XstateDependency {
    u32 leaf;
    Register reg;
    u32 features;
    u64 xcr0_bits;
};

inline constexpr XstateDependency kXstateDependencies[] = {
    {0x1, Register::Ecx, leaf1_ecx::kXsave, xcr0::kX87 | xcr0::kSse},
    {0x1, Register::Ecx, leaf1_ecx::kAvx | leaf1_ecx::kFma | leaf1_ecx::kF16c, xcr0::kAvx},
    {0x7, Register::Ebx, leaf7_ebx::kAvx2, xcr0::kAvx},
    {0x7, Register::Ecx, leaf7_ecx::kVaes | leaf7_ecx::kVpclmulqdq, xcr0::kAvx},
    {0x8000'0001, Register::Ecx, ext1_ecx::kXop | ext1_ecx::kFma4, xcr0::kAvx},
    {0x7, Register::Ebx,
     leaf7_ebx::kAvx512f | leaf7_ebx::kAvx512dq | leaf7_ebx::kAvx512ifma | leaf7_ebx::kAvx512pf |
         leaf7_ebx::kAvx512er | leaf7_ebx::kAvx512cd | leaf7_ebx::kAvx512bw |
         leaf7_ebx::kAvx512vl,
     xcr0::kAvx | xcr0::kAvx512},
    {0x7, Register::Ecx,
     leaf7_ecx::kAvx512vbmi | leaf7_ecx::kAvx512vbmi2 | leaf7_ecx::kAvx512vnni |
         leaf7_ecx::kAvx512bitalg | leaf7_ecx::kAvx512vpopcntdq,
     xcr0::kAvx | xcr0::kAvx512},
    {0x7, Register::Edx,
     leaf7_edx::kAvx512_4vnniw | leaf7_edx::kAvx512_4fmaps | leaf7_edx::kAvx512vp2intersect |
         leaf7_edx::kAvx512fp16,
     xcr0::kAvx | xcr0::kAvx512},
};

}  // namespace lamina::cpuid
