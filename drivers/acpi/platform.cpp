// Walking the root table (ACPI 6.5 5.2.7 RSDT, 5.2.8 XSDT) and handing each table to its decoder.
#include <drivers/acpi/internal.h>
#include <lamina/new.h>

namespace lamina::acpi {
namespace {

using detail::diagnose;
using detail::Table;

struct Handler {
    const char* signature;
    // Returns false when the table turned out unusable, so that a later one may take its place.
    bool (*use)(const Table& table, Platform& out, Sink& log);
};

template <auto member, auto decode>
bool decode_into(const Table& table, Platform& out, Sink& log) {
    return decode(table, out.*member, log);
}

// The IOMMU drivers parse these tables themselves, later.
template <TableLocation Platform::*member>
bool record_location(const Table& table, Platform& out, Sink&) {
    out.*member = TableLocation{table.phys(), table.length()};
    return true;
}

constexpr Handler kHandlers[] = {
    {"APIC", decode_into<&Platform::madt, detail::decode_madt>},
    {"FACP", decode_into<&Platform::fadt, detail::decode_fadt>},
    {"HPET", decode_into<&Platform::hpet, detail::decode_hpet>},
    {"MCFG", decode_into<&Platform::mcfg, detail::decode_mcfg>},
    {"DMAR", record_location<&Platform::dmar>},
    {"IVRS", record_location<&Platform::ivrs>},
};

class Walker {
public:
    Walker(PhysicalReader& reader, Platform& out, Sink& log)
        : reader_(reader), out_(out), log_(log) {}

    // Prefers the XSDT, whose entries are 64-bit, and falls back to the RSDT.
    bool select_root(const Rsdp& rsdp, Table& root) {
        if (rsdp.revision >= 2 && rsdp.xsdt_address != 0) {
            if (load_root(root, rsdp.xsdt_address, "XSDT")) {
                out_.uses_xsdt = true;
                out_.root_table_address = rsdp.xsdt_address;
                return true;
            }
            diagnose(log_, "XSDT at {:#x} unusable, falling back to the RSDT at {:#x}",
                     rsdp.xsdt_address, rsdp.rsdt_address);
        }
        if (rsdp.rsdt_address == 0) {
            diagnose(log_, "no usable root table: the RSDT address is 0");
            return false;
        }
        if (!load_root(root, rsdp.rsdt_address, "RSDT")) {
            diagnose(log_, "no usable root table");
            return false;
        }
        out_.root_table_address = rsdp.rsdt_address;
        return true;
    }

    void walk_entries(const Table& root) {
        usize entry_size = out_.uses_xsdt ? sizeof(u64) : sizeof(u32);
        u32 entry_bytes = root.length() - static_cast<u32>(sizeof(detail::HeaderLayout));
        if (entry_bytes % entry_size != 0)
            root.diagnose(log_, "{} bytes after the last entry, ignored", entry_bytes % entry_size);
        u32 count = static_cast<u32>(entry_bytes / entry_size);
        for (u32 i = 0; i < count; ++i) {
            u64 address;
            if (!read_entry(root, sizeof(detail::HeaderLayout) + u64{i} * entry_size, address)) {
                root.diagnose(log_, "entry {} unreadable, walk stopped", i);
                return;
            }
            if (address == 0) {
                root.diagnose(log_, "entry {} is null, ignored", i);
                continue;
            }
            Table table(reader_);
            if (load_listed(table, address) == TableStatus::Valid) dispatch(table);
        }
    }

    void report_unlisted() {
        if (out_.tables.dropped != 0)
            diagnose(log_, "{} tables beyond the {} the table list holds were not listed",
                     out_.tables.dropped, out_.tables.capacity());
    }

private:
    TableStatus load_listed(Table& table, u64 phys) {
        TableStatus status = table.load(phys, log_);
        out_.tables.push(table.info());
        return status;
    }

    bool load_root(Table& root, u64 phys, const char* signature) {
        if (load_listed(root, phys) != TableStatus::Valid) return false;
        if (!root.has_signature(signature)) {
            root.diagnose(log_, "expected the {} signature, table skipped", signature);
            return false;
        }
        return true;
    }

    bool read_entry(const Table& root, u64 offset, u64& address) const {
        if (out_.uses_xsdt) return root.read(offset, &address, sizeof(address));
        u32 address32;
        if (!root.read(offset, &address32, sizeof(address32))) return false;
        address = address32;
        return true;
    }

    // First usable table wins: a second one with the same signature is reported and ignored.
    void dispatch(const Table& table) {
        for (usize i = 0; i < array_size(kHandlers); ++i) {
            const Handler& handler = kHandlers[i];
            if (!table.has_signature(handler.signature)) continue;
            if (in_use_at_[i] != 0) {
                table.diagnose(log_, "duplicate, the one at {:#x} is in use; table ignored",
                               in_use_at_[i]);
                return;
            }
            if (handler.use(table, out_, log_)) in_use_at_[i] = table.phys();
            return;
        }
    }

    PhysicalReader& reader_;
    Platform& out_;
    Sink& log_;
    u64 in_use_at_[array_size(kHandlers)] = {};  // 0: none yet (no table lives at 0)
};

}  // namespace

bool parse_platform(PhysicalReader& reader, const Rsdp& rsdp, Platform& out, Sink& log) {
    // Built in place: an assigned temporary would cost a Platform's worth of stack.
    new (&out) Platform{};
    out.rsdp = rsdp;
    Walker walker(reader, out, log);
    Table root(reader);
    if (!walker.select_root(rsdp, root)) return false;
    walker.walk_entries(root);
    walker.report_unlisted();
    return true;
}

void print_tables(const Platform& platform, Sink& out) {
    for (const TableInfo& table : platform.tables)
        format(out, "acpi: {} {:#018x} {:>7} (v{} {:<6} {:<8}) {}\n", table.signature, table.phys,
               table.length, table.revision, table.oem_id, table.oem_table_id,
               to_string(table.status));
}

}  // namespace lamina::acpi
