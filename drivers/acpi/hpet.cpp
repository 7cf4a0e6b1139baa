// HPET description table (IA-PC HPET specification 1.0a, section 3.2.4, table 3).
#include <drivers/acpi/internal.h>

namespace lamina::acpi::detail {
namespace {

struct LAMINA_PACKED HpetLayout {
    HeaderLayout header;
    u32 event_timer_block_id;
    GasLayout base_address;
    u8 hpet_number;
    u16 minimum_tick;
    u8 page_protection;
};
static_assert(sizeof(HpetLayout) == 56);

}  // namespace

bool decode_hpet(const Table& table, Hpet& out, Sink& log) {
    HpetLayout layout;
    if (table.length() < sizeof(layout)) {
        table.diagnose(log, "length {} too short for an HPET table ({}), table skipped",
                       table.length(), sizeof(layout));
        return false;
    }
    if (!table.read(0, &layout, sizeof(layout))) {
        table.diagnose(log, "unreadable, table skipped");
        return false;
    }
    Gas base = to_gas(layout.base_address);
    // The timer block is memory-mapped; the specification allows no other space.
    if (base.space != AddressSpace::SystemMemory || base.address == 0) {
        table.diagnose(log,
                       "base address {:#x} in address space {} is not system memory, "
                       "table skipped",
                       base.address, static_cast<u8>(base.space));
        return false;
    }
    out.present = true;
    out.event_timer_block_id = layout.event_timer_block_id;
    out.base_address = base.address;
    out.number = layout.hpet_number;
    out.minimum_tick = layout.minimum_tick;
    out.page_protection = layout.page_protection;
    return true;
}

}  // namespace lamina::acpi::detail
