// MADT decoding (ACPI 6.5 5.2.12): processors, I/O APICs, interrupt overrides and NMI wiring.
#include <drivers/acpi/internal.h>

namespace lamina::acpi::detail {
namespace {

struct LAMINA_PACKED MadtLayout {
    HeaderLayout header;
    u32 local_apic_address;
    u32 flags;
};
static_assert(sizeof(MadtLayout) == 44);
constexpr u32 kPcatCompat = 1u << 0;

// Interrupt controller structure types (Table 5.21). Others (GIC, RINTC, ...) are not x86's.
enum EntryType : u8 {
    kLocalApic = 0x0,
    kIoApic = 0x1,
    kInterruptOverride = 0x2,
    kNmiSource = 0x3,
    kLocalApicNmi = 0x4,
    kLocalApicAddressOverride = 0x5,
    kLocalX2Apic = 0x9,
    kLocalX2ApicNmi = 0xA,
};

// Tables 5.22 to 5.31; each starts with the type and length bytes.
struct LAMINA_PACKED LocalApicEntry {
    u8 type, length;
    u8 acpi_uid;
    u8 apic_id;
    u32 flags;
};
struct LAMINA_PACKED IoApicEntry {
    u8 type, length;
    u8 id;
    u8 reserved;
    u32 address;
    u32 gsi_base;
};
struct LAMINA_PACKED InterruptOverrideEntry {
    u8 type, length;
    u8 bus;
    u8 source;
    u32 gsi;
    u16 flags;
};
struct LAMINA_PACKED NmiSourceEntry {
    u8 type, length;
    u16 flags;
    u32 gsi;
};
struct LAMINA_PACKED LocalApicNmiEntry {
    u8 type, length;
    u8 acpi_uid;
    u16 flags;
    u8 lint;
};
struct LAMINA_PACKED LocalApicAddressOverrideEntry {
    u8 type, length;
    u16 reserved;
    u64 address;
};
struct LAMINA_PACKED LocalX2ApicEntry {
    u8 type, length;
    u16 reserved;
    u32 x2apic_id;
    u32 flags;
    u32 acpi_uid;
};
struct LAMINA_PACKED LocalX2ApicNmiEntry {
    u8 type, length;
    u16 flags;
    u32 acpi_uid;
    u8 lint;
    u8 reserved[3];
};
static_assert(sizeof(LocalApicEntry) == 8 && sizeof(IoApicEntry) == 12 &&
              sizeof(InterruptOverrideEntry) == 10 && sizeof(NmiSourceEntry) == 8 &&
              sizeof(LocalApicNmiEntry) == 6 && sizeof(LocalApicAddressOverrideEntry) == 12 &&
              sizeof(LocalX2ApicEntry) == 16 && sizeof(LocalX2ApicNmiEntry) == 12);

// Local APIC flags (Table 5.23), shared by the x2APIC structure.
constexpr u32 kCpuEnabled = 1u << 0;
constexpr u32 kCpuOnlineCapable = 1u << 1;
// The xAPIC NMI structure's "all processors" uid.
constexpr u8 kAllProcessors8 = 0xFF;

class MadtDecoder {
public:
    MadtDecoder(const Table& table, Madt& out, Sink& log) : table_(table), out_(out), log_(log) {}

    void decode_entries() {
        u32 offset = sizeof(MadtLayout);
        while (offset < table_.length()) {
            u32 remaining = table_.length() - offset;
            u8 entry[255];  // an entry's length is a byte
            if (remaining < 2) {
                table_.diagnose(log_, "{} byte(s) after the last entry, ignored", remaining);
                return;
            }
            if (!table_.read(offset, entry, 2))
                return stop("entry at offset {} unreadable; entry walk stopped", offset);
            u8 type = entry[0], length = entry[1];
            if (length < 2)
                return stop("entry type {} at offset {} has length {}; entry walk stopped", type,
                            offset, length);
            if (length > remaining)
                return stop(
                    "entry type {} at offset {} (length {}) runs past the end of the "
                    "table; entry walk stopped",
                    type, offset, length);
            if (!table_.read(offset, entry, length))
                return stop("entry at offset {} unreadable; entry walk stopped", offset);
            decode_entry(entry, length, offset);
            offset += length;
        }
    }

    void report_truncation() {
        report_dropped(table_, log_, out_.cpus, "processors");
        report_dropped(table_, log_, out_.io_apics, "I/O APICs");
        report_dropped(table_, log_, out_.overrides, "interrupt source overrides");
        report_dropped(table_, log_, out_.nmi_sources, "NMI sources");
        report_dropped(table_, log_, out_.local_nmis, "local APIC NMI entries");
    }

private:
    // Entry lengths chain the walk: past a bad one, nothing after it can be located.
    template <typename... Args>
    void stop(const char* fmt, const Args&... args) {
        table_.diagnose(log_, fmt, args...);
        out_.walk_stopped = true;
    }

    // Copies the entry into its layout. Longer entries are fine (later revisions may extend
    // them); shorter ones are reported and skipped.
    template <typename Layout>
    bool fits(const u8* entry, u8 length, u32 offset, const char* name, Layout& layout) {
        if (length < sizeof(Layout)) {
            table_.diagnose(log_, "{} entry at offset {} has length {}, needs {}; entry ignored",
                            name, offset, length, sizeof(Layout));
            return false;
        }
        str::copy_bytes(&layout, entry, sizeof(Layout));
        return true;
    }

    void decode_entry(const u8* entry, u8 length, u32 offset) {
        switch (entry[0]) {
            case kLocalApic: {
                LocalApicEntry e;
                if (fits(entry, length, offset, "local APIC", e))
                    add_cpu(e.apic_id, e.acpi_uid, e.flags, 0xFF, offset);
                return;
            }
            case kLocalX2Apic: {
                LocalX2ApicEntry e;
                if (fits(entry, length, offset, "local x2APIC", e))
                    add_cpu(e.x2apic_id, e.acpi_uid, e.flags, 0xFFFFFFFF, offset);
                return;
            }
            case kIoApic: {
                IoApicEntry e;
                if (fits(entry, length, offset, "I/O APIC", e))
                    out_.io_apics.push(IoApic{e.id, e.address, e.gsi_base});
                return;
            }
            case kInterruptOverride: {
                InterruptOverrideEntry e;
                if (!fits(entry, length, offset, "interrupt source override", e)) return;
                InterruptOverride item{e.bus, e.source, e.gsi};
                decode_inti_flags(e.flags, offset, item.polarity, item.trigger);
                out_.overrides.push(item);
                return;
            }
            case kNmiSource: {
                NmiSourceEntry e;
                if (!fits(entry, length, offset, "NMI source", e)) return;
                NmiSource item{e.gsi};
                decode_inti_flags(e.flags, offset, item.polarity, item.trigger);
                out_.nmi_sources.push(item);
                return;
            }
            case kLocalApicNmi: {
                LocalApicNmiEntry e;
                if (!fits(entry, length, offset, "local APIC NMI", e)) return;
                u32 uid = e.acpi_uid == kAllProcessors8 ? kAllProcessors : e.acpi_uid;
                add_local_nmi(uid, e.flags, e.lint, offset);
                return;
            }
            case kLocalX2ApicNmi: {
                LocalX2ApicNmiEntry e;
                if (fits(entry, length, offset, "local x2APIC NMI", e))
                    add_local_nmi(e.acpi_uid, e.flags, e.lint, offset);
                return;
            }
            case kLocalApicAddressOverride: {
                LocalApicAddressOverrideEntry e;
                if (!fits(entry, length, offset, "local APIC address override", e)) return;
                // 5.2.12.8: at most one; it supersedes the 32-bit address in the header.
                if (seen_address_override_) {
                    table_.diagnose(log_, "second local APIC address override at offset {} ignored",
                                    offset);
                    return;
                }
                seen_address_override_ = true;
                out_.local_apic_address = e.address;
                return;
            }
            default: return;  // not x86, reserved, or OEM: nothing for us
        }
    }

    // A processor is usable when enabled or online capable (Table 5.23); an APIC id that an
    // xAPIC and an x2APIC entry both describe is listed once.
    void add_cpu(u32 apic_id, u32 acpi_uid, u32 flags, u32 invalid_id, u32 offset) {
        bool enabled = flags & kCpuEnabled;
        if (!enabled && !(flags & kCpuOnlineCapable)) {
            ++out_.unusable_cpus;
            return;
        }
        if (apic_id == invalid_id) {
            table_.diagnose(log_,
                            "processor uid {} at offset {} has the broadcast APIC id {:#x}; "
                            "entry ignored",
                            acpi_uid, offset, apic_id);
            return;
        }
        for (const Cpu& cpu : out_.cpus) {
            if (cpu.apic_id == apic_id) {
                table_.diagnose(log_, "APIC id {} described again at offset {}; entry ignored",
                                apic_id, offset);
                return;
            }
        }
        if (out_.cpus.push(Cpu{apic_id, acpi_uid, enabled}) && enabled) ++out_.enabled_cpus;
    }

    void add_local_nmi(u32 acpi_uid, u16 flags, u8 lint, u32 offset) {
        LocalNmi item{acpi_uid};
        item.lint = lint;
        decode_inti_flags(flags, offset, item.polarity, item.trigger);
        out_.local_nmis.push(item);
    }

    // MPS INTI flags (Table 5.26): polarity in bits 1:0, trigger mode in bits 3:2.
    void decode_inti_flags(u16 flags, u32 offset, Polarity& polarity, Trigger& trigger) {
        polarity = static_cast<Polarity>(flags & 0x3);
        trigger = static_cast<Trigger>((flags >> 2) & 0x3);
        if (polarity == Polarity::Reserved || trigger == Trigger::Reserved)
            table_.diagnose(log_, "entry at offset {} has reserved INTI flags {:#x}", offset,
                            flags);
    }

    const Table& table_;
    Madt& out_;
    Sink& log_;
    bool seen_address_override_ = false;
};

}  // namespace

bool decode_madt(const Table& table, Madt& out, Sink& log) {
    MadtLayout layout;
    if (table.length() < sizeof(layout)) {
        table.diagnose(log, "length {} too short for a MADT ({}), table skipped", table.length(),
                       sizeof(layout));
        return false;
    }
    if (!table.read(0, &layout, sizeof(layout))) {
        table.diagnose(log, "unreadable, table skipped");
        return false;
    }
    // From here on the table is accepted: a bad entry loses that entry or the ones after it,
    // not the processors already found.
    out.present = true;
    out.local_apic_address = layout.local_apic_address;
    out.pcat_compat = layout.flags & kPcatCompat;
    MadtDecoder decoder(table, out, log);
    decoder.decode_entries();
    decoder.report_truncation();
    return true;
}

}  // namespace lamina::acpi::detail
