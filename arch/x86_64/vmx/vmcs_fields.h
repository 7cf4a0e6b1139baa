// VMCS field encodings (SDM Vol. 3D appendix B), the bits of the VM-execution, VM-exit and
// VM-entry controls (SDM Vol. 3C 25.6-25.8), and the basic exit reasons (SDM Vol. 3D appendix C)
// that the VMX backend uses.
#pragma once

#include <lamina/types.h>

namespace lamina::vmx {

enum class Field : u32 {
    // 16-bit control and host-state fields (guest selectors: segment_field()).
    VirtualProcessorId = 0x0000,
    HostEsSelector = 0x0c00,
    HostCsSelector = 0x0c02,
    HostSsSelector = 0x0c04,
    HostDsSelector = 0x0c06,
    HostFsSelector = 0x0c08,
    HostGsSelector = 0x0c0a,
    HostTrSelector = 0x0c0c,

    // 64-bit control fields.
    IoBitmapA = 0x2000,
    IoBitmapB = 0x2002,
    MsrBitmap = 0x2004,
    EptPointer = 0x201a,
    XssExitingBitmap = 0x202c,
    GuestPhysicalAddress = 0x2400,  // read-only

    // 64-bit guest-state and host-state fields.
    VmcsLinkPointer = 0x2800,
    GuestDebugCtl = 0x2802,
    GuestPat = 0x2804,
    GuestEfer = 0x2806,
    GuestPdpte0 = 0x280a,
    HostPat = 0x2c00,
    HostEfer = 0x2c02,

    // 32-bit control fields.
    PinBasedControls = 0x4000,
    PrimaryProcessorControls = 0x4002,
    ExceptionBitmap = 0x4004,
    PageFaultErrorCodeMask = 0x4006,
    PageFaultErrorCodeMatch = 0x4008,
    Cr3TargetCount = 0x400a,
    VmExitControls = 0x400c,
    VmExitMsrStoreCount = 0x400e,
    VmExitMsrLoadCount = 0x4010,
    VmEntryControls = 0x4012,
    VmEntryMsrLoadCount = 0x4014,
    VmEntryInterruptionInfo = 0x4016,
    VmEntryExceptionErrorCode = 0x4018,
    VmEntryInstructionLength = 0x401a,
    SecondaryProcessorControls = 0x401e,

    // 32-bit read-only data fields.
    VmInstructionError = 0x4400,
    ExitReason = 0x4402,
    ExitInterruptionInfo = 0x4404,
    ExitInterruptionErrorCode = 0x4406,
    IdtVectoringInfo = 0x4408,
    IdtVectoringErrorCode = 0x440a,
    ExitInstructionLength = 0x440c,

    // 32-bit guest-state fields (segment limits and access rights: segment_field()).
    GuestGdtrLimit = 0x4810,
    GuestIdtrLimit = 0x4812,
    GuestInterruptibility = 0x4824,
    GuestActivityState = 0x4826,
    GuestSysenterCs = 0x482a,
    HostSysenterCs = 0x4c00,

    // Natural-width control fields.
    Cr0GuestHostMask = 0x6000,
    Cr4GuestHostMask = 0x6002,
    Cr0ReadShadow = 0x6004,
    Cr4ReadShadow = 0x6006,
    ExitQualification = 0x6400,  // read-only

    // Natural-width guest-state fields (segment bases: segment_field()).
    GuestCr0 = 0x6800,
    GuestCr3 = 0x6802,
    GuestCr4 = 0x6804,
    GuestGdtrBase = 0x6816,
    GuestIdtrBase = 0x6818,
    GuestDr7 = 0x681a,
    GuestRsp = 0x681c,
    GuestRip = 0x681e,
    GuestRflags = 0x6820,
    GuestPendingDebugExceptions = 0x6822,
    GuestSysenterEsp = 0x6824,
    GuestSysenterEip = 0x6826,

    // Natural-width host-state fields.
    HostCr0 = 0x6c00,
    HostCr3 = 0x6c02,
    HostCr4 = 0x6c04,
    HostFsBase = 0x6c06,
    HostGsBase = 0x6c08,
    HostTrBase = 0x6c0a,
    HostGdtrBase = 0x6c0c,
    HostIdtrBase = 0x6c0e,
    HostSysenterEsp = 0x6c10,
    HostSysenterEip = 0x6c12,
    HostRsp = 0x6c14,  // vmx_entry.S writes it (VMCS_HOST_RSP)
    HostRip = 0x6c16,
};

// The guest segment fields come in the order ES, CS, SS, DS, FS, GS, LDTR, TR, two encodings
// apart (SDM Vol. 3D B.1.2, B.3.3, B.4.3): `index` is that position.
enum class SegmentPart : u32 { Selector = 0x0800, Limit = 0x4800, AccessRights = 0x4814, Base = 0x6806 };
constexpr Field segment_field(SegmentPart part, u32 index) {
    return static_cast<Field>(static_cast<u32>(part) + 2 * index);
}

namespace pin {
constexpr u32 kExternalInterruptExiting = 1u << 0;
constexpr u32 kNmiExiting = 1u << 3;
constexpr u32 kPreemptionTimer = 1u << 6;
}  // namespace pin

namespace primary {
constexpr u32 kInterruptWindowExiting = 1u << 2;
constexpr u32 kHltExiting = 1u << 7;
constexpr u32 kCr3LoadExiting = 1u << 15;
constexpr u32 kCr3StoreExiting = 1u << 16;
constexpr u32 kCr8LoadExiting = 1u << 19;
constexpr u32 kCr8StoreExiting = 1u << 20;
constexpr u32 kUnconditionalIoExiting = 1u << 24;
constexpr u32 kUseIoBitmaps = 1u << 25;
constexpr u32 kUseMsrBitmaps = 1u << 28;
constexpr u32 kActivateSecondary = 1u << 31;
}  // namespace primary

namespace secondary {
constexpr u32 kEnableEpt = 1u << 1;
constexpr u32 kEnableRdtscp = 1u << 3;
constexpr u32 kEnableVpid = 1u << 5;
constexpr u32 kUnrestrictedGuest = 1u << 7;
constexpr u32 kEnableInvpcid = 1u << 12;
constexpr u32 kEnablePml = 1u << 17;
constexpr u32 kEnableXsaves = 1u << 20;
}  // namespace secondary

namespace exit_control {
constexpr u32 kSaveDebugControls = 1u << 2;
constexpr u32 kHostAddressSpaceSize = 1u << 9;
constexpr u32 kAcknowledgeInterruptOnExit = 1u << 15;
constexpr u32 kSavePat = 1u << 18;
constexpr u32 kLoadPat = 1u << 19;
constexpr u32 kSaveEfer = 1u << 20;
constexpr u32 kLoadEfer = 1u << 21;
}  // namespace exit_control

namespace entry_control {
constexpr u32 kLoadDebugControls = 1u << 2;
constexpr u32 kIa32eModeGuest = 1u << 9;
constexpr u32 kLoadPat = 1u << 14;
constexpr u32 kLoadEfer = 1u << 15;
}  // namespace entry_control

// Basic exit reasons: bits 15:0 of the exit-reason field.
enum class BasicExit : u16 {
    ExceptionOrNmi = 0,
    ExternalInterrupt = 1,
    TripleFault = 2,
    InterruptWindow = 7,
    Cpuid = 10,
    Hlt = 12,
    Invlpg = 14,
    Vmcall = 18,
    ControlRegisterAccess = 28,
    IoInstruction = 30,
    Rdmsr = 31,
    Wrmsr = 32,
    InvalidGuestState = 33,
    MsrLoading = 34,
    MachineCheckDuringEntry = 41,
    EptViolation = 48,
    EptMisconfiguration = 49,
    Xsetbv = 55,
};
// Exit-reason bit 31: the VM entry failed while or after loading guest state (SDM Vol. 3C 27.8).
constexpr u32 kExitReasonEntryFailure = 1u << 31;

// VM-entry and VM-exit interruption-information fields (SDM Vol. 3C 25.8.3, 25.9.2).
namespace interruption {
constexpr u32 kVectorMask = 0xff;
constexpr u32 kTypeShift = 8;
constexpr u32 kTypeMask = 7u << kTypeShift;
constexpr u32 kErrorCodeValid = 1u << 11;
constexpr u32 kValid = 1u << 31;
enum class Type : u32 {
    ExternalInterrupt = 0,
    Nmi = 2,
    HardwareException = 3,
    SoftwareInterrupt = 4,
    PrivilegedSoftwareException = 5,
    SoftwareException = 6,
};
constexpr Type type_of(u32 info) { return static_cast<Type>((info & kTypeMask) >> kTypeShift); }
// Software events need the instruction length on re-injection (SDM Vol. 3C 25.8.3).
constexpr bool needs_instruction_length(Type type) {
    return type == Type::SoftwareInterrupt || type == Type::PrivilegedSoftwareException ||
           type == Type::SoftwareException;
}
}  // namespace interruption

}  // namespace lamina::vmx
