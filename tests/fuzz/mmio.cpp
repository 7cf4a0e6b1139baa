// Feeds a guest's state (a Scenario) and its RAM, page tables and code, to the MMIO emulation path;
// checks that only an Ok result touches the vCPU and the device (with the access that faulted), and
// that walks of one address agree across reads, writes and fetches.
#include "fuzz_support.h"
#include "fake_vcpu.h"

#include <arch/x86_64/registers.h>
#include <hypervisor/emulate/mmio.h>

#include <vector>

using namespace lamina;
using namespace lamina::emulate;

namespace {

constexpr u64 kDevicePage = 0xfed00000;

// The first bytes of the input.
struct Scenario {
    u8 paging;         // PagingMode, modulo its count
    u8 options;        // Option bits
    u8 code;           // CodeOption bits
    u8 physical_address_bits;
    u32 cs_base;
    u64 rip;
    u64 cr3;
    u64 gpa;           // where the data access faulted
};
static_assert(sizeof(Scenario) == 32);

enum PagingMode : u8 { kPagingOff, kPaging32, kPagingPae, kPaging4Level, kPaging5Level, kPagingModes };
enum Option : u8 {
    kWriteProtect = 1u << 0,
    kSmep = 1u << 1,
    kSmap = 1u << 2,
    kNoExecute = 1u << 3,
    kPages1g = 1u << 4,
    kUserMode = 1u << 5,
    kWriteFault = 1u << 6,
    kAlignmentCheck = 1u << 7,  // RFLAGS.AC
};
enum CodeOption : u8 {
    kProtected = 1u << 0,      // CR0.PE when paging is off (paging needs it anyway)
    kDefault32 = 1u << 1,      // CS.D
    kLongCode = 1u << 2,       // CS.L: 64-bit code in long mode, else compatibility mode
    kVirtual8086 = 1u << 3,    // RFLAGS.VM
};

// Guest RAM: the pages from gpa 0 that the input's bytes reach (the rest of the last one zero, as
// stage-2 maps whole pages); everything else is not RAM.
class GuestRam final : public GuestPhysicalReader {
public:
    GuestRam(const u8* bytes, usize size) : bytes_(bytes, bytes + size) { bytes_.resize(align_up(size, 4 * KiB)); }
    bool read(u64 gpa, void* out, usize size) override {
        if (!contains(gpa, size)) return false;
        std::memcpy(out, bytes_.data() + gpa, size);
        return true;
    }
    bool contains(u64 gpa, u64 size) const { return gpa <= bytes_.size() && size <= bytes_.size() - gpa; }

private:
    std::vector<u8> bytes_;
};

class Device final : public MmioHandler {
public:
    u64 read(u64 gpa, u8 size) override {
        record(gpa, size);
        ++reads;
        return 0x8877665544332211;
    }
    void write(u64 gpa, u8 size, u64) override {
        record(gpa, size);
        ++writes;
    }
    int reads = 0;
    int writes = 0;
    u64 gpa = 0;
    u8 size = 0;

private:
    // Every access of one instruction is the same gpa and size.
    void record(u64 at, u8 bytes) {
        FUZZ_CHECK(reads + writes == 0 || (at == gpa && bytes == size));
        gpa = at;
        size = bytes;
    }
};

u16 code_segment_attributes(u8 code) {
    constexpr u16 kCodeSegment = 0xb | (1u << 4) | (1u << 7);  // execute/read, S, P
    return kCodeSegment | (code & kLongCode ? 1u << 13 : 0) | (code & kDefault32 ? 1u << 14 : 0);
}

void set_up(testing::FakeVcpu& vcpu, const Scenario& s) {
    const PagingMode mode = static_cast<PagingMode>(s.paging % kPagingModes);
    u64 cr0 = s.code & kProtected ? x86::kCr0Pe : 0;
    u64 cr4 = 0, efer = 0;
    if (mode != kPagingOff) cr0 |= x86::kCr0Pe | x86::kCr0Pg;
    if (s.options & kWriteProtect) cr0 |= x86::kCr0Wp;
    if (mode == kPaging32) cr4 |= x86::kCr4Pse;
    if (mode >= kPagingPae) cr4 |= x86::kCr4Pae;
    if (mode == kPaging5Level) cr4 |= x86::kCr4La57;
    if (mode >= kPaging4Level) efer |= x86::kEferLme | x86::kEferLma;
    if (s.options & kSmep) cr4 |= x86::kCr4Smep;
    if (s.options & kSmap) cr4 |= x86::kCr4Smap;
    if (s.options & kNoExecute) efer |= x86::kEferNxe;
    vcpu.set_control_register(ControlRegister::Cr0, cr0);
    vcpu.set_control_register(ControlRegister::Cr3, s.cr3);
    vcpu.set_control_register(ControlRegister::Cr4, cr4);
    vcpu.set_efer(efer);
    vcpu.rip_value = s.rip;
    vcpu.rflags_value = x86::kRflagsFixed | (s.options & kAlignmentCheck ? u64{1} << 18 : 0) |
                        (s.code & kVirtual8086 ? x86::kRflagsVm : 0);
    vcpu.seg(SegmentRegister::Cs) = {0x8, s.cs_base, 0xffffffff, code_segment_attributes(s.code)};
    const u16 dpl = s.options & kUserMode ? 3u << 5 : 0;
    vcpu.seg(SegmentRegister::Ss) = {0x10, 0, 0xffffffff, static_cast<u16>(0x3 | (1u << 4) | (1u << 7) | dpl)};
    // Every register points into the device page, at its own offset.
    for (u8 r = 0; r < kGprCount; ++r) vcpu.set_gpr(static_cast<Gpr>(r), kDevicePage + 0x40 * r);
}

// The walk of one linear address must agree with itself: a write allowed is a read allowed to the
// same gpa, a fault names the access it was, and the page offset survives translation.
void check_walks(GuestRam& memory, const PagingState& paging, u64 linear, bool user) {
    const WalkResult read = translate(memory, paging, linear, {AccessKind::Read, user, false});
    const WalkResult write = translate(memory, paging, linear, {AccessKind::Write, user, false});
    const WalkResult fetch = translate(memory, paging, linear, {AccessKind::Fetch, user, false});
    for (const WalkResult* walk : {&read, &write, &fetch}) {
        switch (walk->status) {
            case WalkStatus::Ok:
                FUZZ_CHECK((walk->address & 0xfff) == (linear & 0xfff));
                if (!(paging.cr0 & x86::kCr0Pg)) FUZZ_CHECK(walk->address == (linear & 0xffffffff));
                break;
            case WalkStatus::PageFault:
                FUZZ_CHECK((walk->error_code & ~u32{0x1f}) == 0);
                FUZZ_CHECK(((walk->error_code & page_fault::kUser) != 0) == user);
                if (walk->error_code & page_fault::kReserved) FUZZ_CHECK(walk->error_code & page_fault::kPresent);
                break;
            case WalkStatus::NonCanonical: FUZZ_CHECK(paging.efer & x86::kEferLma); break;
            case WalkStatus::NotRam: FUZZ_CHECK(!memory.contains(walk->address, 1)); break;
        }
    }
    FUZZ_CHECK(((write.error_code & page_fault::kWrite) != 0) == (write.status == WalkStatus::PageFault));
    FUZZ_CHECK(!(read.error_code & (page_fault::kWrite | page_fault::kFetch)));
    FUZZ_CHECK(!(fetch.error_code & page_fault::kWrite));
    if (write.status == WalkStatus::Ok) FUZZ_CHECK(read.status == WalkStatus::Ok && read.address == write.address);
    if (fetch.status == WalkStatus::Ok && read.status == WalkStatus::Ok) FUZZ_CHECK(read.address == fetch.address);
    // Walks that stop at the same entry stop the same way: not present, not RAM, or not canonical.
    const bool read_stopped_early = read.status != WalkStatus::Ok && !(read.error_code & page_fault::kPresent);
    if (read_stopped_early) {
        FUZZ_CHECK(write.status == read.status && fetch.status == read.status && write.address == read.address);
        FUZZ_CHECK(!(write.error_code & page_fault::kPresent) && !(fetch.error_code & page_fault::kPresent));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Scenario scenario;
    if (size < sizeof(scenario)) return -1;
    std::memcpy(&scenario, data, sizeof(scenario));
    GuestRam memory(data + sizeof(scenario), size - sizeof(scenario));

    testing::FakeVcpu vcpu;
    set_up(vcpu, scenario);
    const testing::FakeVcpu before = vcpu;
    Device device;
    MmioMap devices;
    FUZZ_CHECK(devices.claim(kDevicePage, 0x1000, device) == RangeStatus::Ok);
    const PagingFeatures features{scenario.physical_address_bits, (scenario.options & kPages1g) != 0};
    const bool write_fault = scenario.options & kWriteFault;

    const MmioResult result = emulate_mmio(vcpu, memory, devices, features, scenario.gpa, write_fault);
    FUZZ_CHECK(mmio_status_name(result.status) != nullptr);
    if (result.status == MmioStatus::Ok) {
        FUZZ_CHECK(device.reads + device.writes >= 1 && device.reads <= 1 && device.writes <= 1);
        FUZZ_CHECK(device.gpa == scenario.gpa && (write_fault ? device.writes : device.reads) == 1);
        FUZZ_CHECK(vcpu.rip_value != before.rip_value && vcpu.injected.empty());
    } else {
        // Nothing changes but what the caller does with the result.
        FUZZ_CHECK(device.reads + device.writes == 0);
        FUZZ_CHECK(vcpu.rip_value == before.rip_value && vcpu.rflags_value == before.rflags_value);
        for (u8 r = 0; r < kGprCount; ++r)
            FUZZ_CHECK(vcpu.gpr(static_cast<Gpr>(r)) == before.gpr(static_cast<Gpr>(r)));
    }
    if (result.status == MmioStatus::Fault) {
        FUZZ_CHECK(result.vector == kPageFaultVector || result.vector == kGeneralProtectionVector);
        if (result.vector == kGeneralProtectionVector) FUZZ_CHECK(result.error_code == 0);
        else FUZZ_CHECK(!(result.error_code & page_fault::kWrite));  // it was a fetch
    }
    if (result.status == MmioStatus::CodeNotInRam) FUZZ_CHECK(!memory.contains(result.address, 1));
    if (result.status == MmioStatus::Undecodable) FUZZ_CHECK(result.decode != DecodeStatus::Ok);

    const PagingState paging{vcpu.control_register(ControlRegister::Cr0), scenario.cr3,
                             vcpu.control_register(ControlRegister::Cr4), vcpu.efer(), features};
    check_walks(memory, paging, scenario.rip + scenario.cs_base, scenario.options & kUserMode);
    return 0;
}
