// MCFG decoding: the PCI Express ECAM windows (PCI Firmware specification 3.2, 4.1.2).
#include <drivers/acpi/internal.h>

namespace lamina::acpi::detail {
namespace {

struct LAMINA_PACKED McfgLayout {
    HeaderLayout header;
    u8 reserved[8];
};
static_assert(sizeof(McfgLayout) == 44);

// Table 4-3.
struct LAMINA_PACKED AllocationLayout {
    u64 base_address;
    u16 segment_group;
    u8 start_bus;
    u8 end_bus;
    u32 reserved;
};
static_assert(sizeof(AllocationLayout) == 16);

}  // namespace

bool decode_mcfg(const Table& table, Mcfg& out, Sink& log) {
    if (table.length() < sizeof(McfgLayout)) {
        table.diagnose(log, "length {} too short for an MCFG ({}), table skipped", table.length(),
                       sizeof(McfgLayout));
        return false;
    }
    u32 allocation_bytes = table.length() - static_cast<u32>(sizeof(McfgLayout));
    if (allocation_bytes % sizeof(AllocationLayout) != 0)
        table.diagnose(log, "{} bytes after the last allocation, ignored",
                       allocation_bytes % sizeof(AllocationLayout));
    out.present = true;
    u32 count = static_cast<u32>(allocation_bytes / sizeof(AllocationLayout));
    for (u32 i = 0; i < count; ++i) {
        AllocationLayout allocation;
        if (!table.read(sizeof(McfgLayout) + u64{i} * sizeof(allocation), &allocation,
                        sizeof(allocation))) {
            table.diagnose(log, "allocation {} unreadable, the rest ignored", i);
            break;
        }
        McfgSegment segment{allocation.base_address, allocation.segment_group, allocation.start_bus,
                            allocation.end_bus};
        if (segment.start_bus > segment.end_bus || segment.base_address == 0) {
            table.diagnose(log,
                           "allocation {} (segment {}, buses {}..{}, base {:#x}) is malformed, "
                           "ignored",
                           i, segment.segment_group, segment.start_bus, segment.end_bus,
                           segment.base_address);
            continue;
        }
        out.segments.push(segment);
    }
    report_dropped(table, log, out.segments, "ECAM allocations");
    return true;
}

}  // namespace lamina::acpi::detail
