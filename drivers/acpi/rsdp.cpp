// Finding and validating the Root System Description Pointer (ACPI 6.5 5.2.5).
#include <drivers/acpi/internal.h>

#include <stddef.h>

namespace lamina::acpi {
namespace {

using detail::diagnose;

// ACPI 6.5 5.2.5.3, Table 5.3. ACPI 1.0 defined only the first 20 bytes.
struct LAMINA_PACKED RsdpLayout {
    char signature[8];
    u8 checksum;  // over the first 20 bytes
    char oem_id[6];
    u8 revision;
    u32 rsdt_address;
    u32 length;  // of the whole structure, revision 2 and up
    u64 xsdt_address;
    u8 extended_checksum;  // over length bytes
    u8 reserved[3];
};
static_assert(sizeof(RsdpLayout) == 36);
constexpr usize kRsdpV1Size = offsetof(RsdpLayout, length);
static_assert(kRsdpV1Size == 20);
constexpr u32 kMaxRsdpLength = 4096;
constexpr u64 kEbdaSegmentPointer = 0x40E;  // in the BIOS data area
constexpr u64 kEbdaScanLength = 1 * KiB;
constexpr u64 kInterruptVectorTableEnd = 0x400;
constexpr u64 kBiosAreaStart = 0xE0000, kBiosAreaEnd = 0x100000;
constexpr u64 kRsdpAlignment = 16;

// Serves a boot loader's copy of the RSDP as if it were physical memory at 0.
class CopyReader final : public PhysicalReader {
public:
    CopyReader(const u8* bytes, usize size) : bytes_(bytes), size_(size) {}
    bool read(u64 phys, void* dst, usize length) override {
        if (phys > size_ || length > size_ - phys) return false;
        str::copy_bytes(dst, bytes_ + phys, length);
        return true;
    }

private:
    const u8* bytes_;
    usize size_;
};

bool has_rsdp_signature(const char* signature) {
    return str::compare_bytes(signature, "RSD PTR ", 8) == 0;
}

// Checks the RSDP that reader has at phys; where names it in diagnostics. The signature has been
// matched already.
bool validate(PhysicalReader& reader, u64 phys, const char* where, Rsdp& out, Sink& log) {
    RsdpLayout layout;
    if (!reader.read(phys, &layout, kRsdpV1Size)) {
        diagnose(log, "{}: unreadable", where);
        return false;
    }
    if (detail::sum_of(&layout, kRsdpV1Size) != 0) {
        diagnose(log, "{}: bad checksum, ignored", where);
        return false;
    }
    Rsdp rsdp;
    rsdp.revision = layout.revision;
    rsdp.phys = phys;
    detail::copy_name(rsdp.oem_id, layout.oem_id, sizeof(layout.oem_id));
    rsdp.rsdt_address = layout.rsdt_address;

    if (layout.revision >= 2) {
        if (!reader.read(phys, &layout, sizeof(layout))) {
            // A boot loader may have copied only the ACPI 1.0 part, which its checksum vouches for.
            diagnose(log, "{}: revision {} but only the ACPI 1.0 part is available, using the RSDT",
                     where, rsdp.revision);
            out = rsdp;
            return true;
        }
        u32 length = layout.length;
        if (length < sizeof(layout) || length > kMaxRsdpLength) {
            diagnose(log, "{}: length {} outside {}..{}, ignored", where, length, sizeof(layout),
                     kMaxRsdpLength);
            return false;
        }
        u8 sum;
        if (!detail::sum_bytes(reader, phys, length, sum)) {
            diagnose(log, "{}: cannot read its {} bytes, ignored", where, length);
            return false;
        }
        // As in ACPICA, a bad extended checksum condemns the whole structure, not just the XSDT
        // address: nothing then vouches for the revision that says the extension is there.
        if (sum != 0) {
            diagnose(log, "{}: bad extended checksum, ignored", where);
            return false;
        }
        rsdp.xsdt_address = layout.xsdt_address;
    }
    out = rsdp;
    return true;
}

bool scan(PhysicalReader& reader, u64 start, u64 end, Rsdp& out, Sink& log) {
    for (u64 phys = start; phys < end; phys += kRsdpAlignment) {
        char signature[8];
        if (!reader.read(phys, signature, sizeof(signature)) || !has_rsdp_signature(signature))
            continue;
        char where[40];
        format_to(where, sizeof(where), "RSDP at {:#x}", phys);
        if (validate(reader, phys, where, out, log)) return true;
    }
    return false;
}

}  // namespace

bool parse_rsdp(const u8* bytes, usize size, Rsdp& out, Sink& log) {
    const char* where = "RSDP from the boot loader";
    if (bytes == nullptr || size < kRsdpV1Size) {
        diagnose(log, "{}: {} bytes, an RSDP has at least {}", where, size, kRsdpV1Size);
        return false;
    }
    if (!has_rsdp_signature(reinterpret_cast<const char*>(bytes))) {
        diagnose(log, "{}: bad signature", where);
        return false;
    }
    CopyReader reader(bytes, size);
    return validate(reader, 0, where, out, log);
}

bool find_rsdp(PhysicalReader& reader, Rsdp& out, Sink& log) {
    // ACPI 6.5 5.2.5.1: the EBDA's real-mode segment is stored at 40:0Eh. Like ACPICA, ignore
    // a pointer into the interrupt vector table (a BIOS without an EBDA leaves 0 there).
    u16 ebda_segment = 0;
    if (reader.read(kEbdaSegmentPointer, &ebda_segment, sizeof(ebda_segment))) {
        u64 ebda = u64{ebda_segment} << 4;
        if (ebda >= kInterruptVectorTableEnd &&
            scan(reader, ebda, ebda + kEbdaScanLength, out, log))
            return true;
    }
    if (scan(reader, kBiosAreaStart, kBiosAreaEnd, out, log)) return true;
    diagnose(log, "no RSDP in the EBDA or the BIOS area");
    return false;
}

}  // namespace lamina::acpi
