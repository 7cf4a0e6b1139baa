// Feeds firmware memory to the ACPI parser (byte 0: Flags, the rest: memory at 0xE0000); checks that
// every table kept lies inside that memory, that the MADT, MCFG, HPET and FADT decoded keep their
// rules and limits, and that each diagnostic is one whole "acpi: " line.
#include "fuzz_support.h"

#include <drivers/acpi/acpi.h>

#include <string>
#include <vector>

using namespace lamina;
using namespace lamina::acpi;

namespace {

constexpr u64 kMemoryBase = 0xE0000;
constexpr usize kRsdpV1Size = 20, kRsdpV2Size = 36, kHeaderSize = 36;
constexpr usize kRsdpChecksum = 8, kRsdpRevision = 15, kRsdpLength = 20, kRsdpExtendedChecksum = 32;
constexpr usize kRsdtAddress = 16, kXsdtAddress = 24;
constexpr usize kTableLength = 4, kTableChecksum = 9;

// Byte 0 of the input.
enum Flags : u8 {
    // Make the RSDP's, the root table's and each listed table's checksum right, so that the
    // fuzzer spends its time in the decoders rather than on sums.
    kFixChecksums = 1u << 0,
    // Find the RSDP by scanning the BIOS area instead of taking a boot loader's copy.
    kScanForRsdp = 1u << 1,
    // The boot loader's copy is ACPI 1.0's 20 bytes (Multiboot2 tag 14), not 36 (tag 15).
    kRsdpV1Copy = 1u << 2,
};

class FirmwareMemory final : public PhysicalReader {
public:
    explicit FirmwareMemory(std::vector<u8> bytes) : bytes_(std::move(bytes)) {}

    bool read(u64 phys, void* dst, usize length) override {
        if (!contains(phys, length)) return false;
        std::memcpy(dst, bytes_.data() + (phys - kMemoryBase), length);
        return true;
    }
    bool contains(u64 phys, u64 length) const {
        return phys >= kMemoryBase && phys - kMemoryBase <= bytes_.size() &&
               length <= bytes_.size() - (phys - kMemoryBase);
    }
    u8* at(u64 phys, u64 length) { return contains(phys, length) ? bytes_.data() + (phys - kMemoryBase) : nullptr; }
    usize size() const { return bytes_.size(); }

private:
    std::vector<u8> bytes_;
};

template <typename T>
T load(const u8* bytes) {
    T value;
    std::memcpy(&value, bytes, sizeof(T));
    return value;
}

// Sets bytes[checksum_at] so that bytes[0..length) sums to 0.
void fix_sum(u8* bytes, usize length, usize checksum_at) {
    bytes[checksum_at] = 0;
    u8 sum = 0;
    for (usize i = 0; i < length; ++i) sum = static_cast<u8>(sum + bytes[i]);
    bytes[checksum_at] = static_cast<u8>(-sum);
}

// Fixes the checksum of the table at phys if its header and length are in memory.
void fix_table(FirmwareMemory& memory, u64 phys) {
    const u8* header = memory.at(phys, kHeaderSize);
    if (!header) return;
    const u32 length = load<u32>(header + kTableLength);
    if (length < kHeaderSize) return;
    if (u8* table = memory.at(phys, length)) fix_sum(table, length, kTableChecksum);
}

// Children first: a root table that overlaps one of them keeps its own sum right.
void fix_root_and_tables(FirmwareMemory& memory, u64 root, usize entry_size) {
    const u8* header = memory.at(root, kHeaderSize);
    if (!header) return;
    const u32 length = load<u32>(header + kTableLength);
    const u8* entries = memory.at(root, length);
    if (length < kHeaderSize || !entries) return;
    for (usize at = kHeaderSize; at + entry_size <= length; at += entry_size)
        fix_table(memory, entry_size == 8 ? load<u64>(entries + at) : load<u32>(entries + at));
    fix_table(memory, root);
}

void fix_checksums(FirmwareMemory& memory, u64 rsdp_phys) {
    u8* rsdp = memory.at(rsdp_phys, kRsdpV2Size);
    if (!rsdp) return;
    fix_root_and_tables(memory, load<u32>(rsdp + kRsdtAddress), 4);
    // The XSDT last: the parser prefers it, so its sums win where the two trees share bytes.
    if (rsdp[kRsdpRevision] >= 2) fix_root_and_tables(memory, load<u64>(rsdp + kXsdtAddress), 8);
    fix_sum(rsdp, kRsdpV1Size, kRsdpChecksum);
    const u32 length = load<u32>(rsdp + kRsdpLength);
    if (u8* whole = memory.at(rsdp_phys, length); whole && length >= kRsdpV2Size)
        fix_sum(whole, length, kRsdpExtendedChecksum);
}

// Where the scan will look first: the first 16-byte aligned "RSD PTR " in memory.
u64 first_rsdp_signature(FirmwareMemory& memory) {
    for (u64 phys = kMemoryBase; memory.contains(phys, 8); phys += 16)
        if (std::memcmp(memory.at(phys, 8), "RSD PTR ", 8) == 0) return phys;
    return 0;
}

class LogSink final : public Sink {
public:
    void write(const char* text, usize length) override { text_.append(text, length); }
    const std::string& text() const { return text_; }

private:
    std::string text_;
};

// One line per write, each "acpi: ..." and short enough for the parser's line buffer.
void check_log(const std::string& log) {
    usize start = 0;
    while (start < log.size()) {
        const usize newline = log.find('\n', start);
        FUZZ_CHECK(newline != std::string::npos);
        FUZZ_CHECK(log.compare(start, 6, "acpi: ") == 0);
        FUZZ_CHECK(newline - start < 160);
        start = newline + 1;
    }
}

bool printable(const char* text) {
    for (; *text; ++text)
        if (*text < ' ' || *text > '~') return false;
    return true;
}

void check_platform(const Platform& platform, const FirmwareMemory& memory) {
    FUZZ_CHECK(platform.tables.count <= kMaxTables);
    for (const TableInfo& table : platform.tables) {
        FUZZ_CHECK(fuzz::terminated(table.signature) && printable(table.signature));
        FUZZ_CHECK(fuzz::terminated(table.oem_id) && printable(table.oem_id));
        FUZZ_CHECK(fuzz::terminated(table.oem_table_id) && printable(table.oem_table_id));
        if (table.status == TableStatus::Valid)
            FUZZ_CHECK(table.length >= kHeaderSize && memory.contains(table.phys, table.length));
    }

    const Madt& madt = platform.madt;
    u32 enabled = 0;
    for (u32 i = 0; i < madt.cpus.count; ++i) {
        FUZZ_CHECK(madt.cpus[i].apic_id != 0xFFFFFFFF);
        for (u32 j = 0; j < i; ++j) FUZZ_CHECK(madt.cpus[j].apic_id != madt.cpus[i].apic_id);
        enabled += madt.cpus[i].enabled;
    }
    FUZZ_CHECK(madt.enabled_cpus == enabled);

    for (const McfgSegment& segment : platform.mcfg.segments)
        FUZZ_CHECK(segment.start_bus <= segment.end_bus && segment.base_address != 0);
    if (platform.hpet.present) FUZZ_CHECK(platform.hpet.base_address != 0);
    if (platform.fadt.present) FUZZ_CHECK(platform.fadt.length >= 116);
    if (platform.fadt.reset_supported())
        FUZZ_CHECK(platform.fadt.reset_register.bit_width == 8 && platform.fadt.reset_register.bit_offset == 0);
    for (const TableLocation* location : {&platform.dmar, &platform.ivrs})
        if (location->present()) FUZZ_CHECK(memory.contains(location->phys, location->length));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return -1;
    const u8 flags = data[0];
    FirmwareMemory memory(std::vector<u8>(data + 1, data + size));
    const u64 rsdp_phys = flags & kScanForRsdp ? first_rsdp_signature(memory) : kMemoryBase;
    if (flags & kFixChecksums) fix_checksums(memory, rsdp_phys);

    LogSink log;
    Rsdp rsdp;
    bool found;
    if (flags & kScanForRsdp) {
        found = find_rsdp(memory, rsdp, log);
    } else {
        // The boot loader's copy: exactly its bytes, so ASan sees a read past them.
        const usize copied = min(memory.size(), flags & kRsdpV1Copy ? kRsdpV1Size : kRsdpV2Size);
        std::vector<u8> copy(copied);
        if (copied) memory.read(kMemoryBase, copy.data(), copied);
        found = parse_rsdp(copy.data(), copy.size(), rsdp, log);
    }
    if (found) {
        FUZZ_CHECK(fuzz::terminated(rsdp.oem_id) && printable(rsdp.oem_id));
        if (rsdp.xsdt_address) FUZZ_CHECK(rsdp.revision >= 2);
        static Platform platform;  // about 9 KiB, as in the hypervisor
        if (parse_platform(memory, rsdp, platform, log)) check_platform(platform, memory);
        LogSink listing;
        print_tables(platform, listing);
    }
    check_log(log.text());
    return 0;
}
