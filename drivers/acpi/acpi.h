// ACPI table discovery (ACPI 6.5, chapter 5.2): finds the RSDP, walks the XSDT (or the RSDT) and
// decodes what the hypervisor needs to know about the platform (MADT, FADT, HPET, MCFG) into a
// fixed-size Platform.
//
// Firmware memory is reached only through a PhysicalReader and every byte is copied and checked
// before use; nothing keeps a pointer into firmware memory. So the same code runs in the image and
// against fixtures on the host, and a corrupt table is reported on the log Sink (one line per
// problem, "acpi: ..."), then skipped, never trusted.
#pragma once

#include <lamina/assert.h>
#include <lamina/format.h>
#include <lamina/types.h>

namespace lamina::acpi {

// Copies physical memory for the parser: the image maps and copies, the tests serve fixtures.
class PhysicalReader {
public:
    // Returns false when any byte of [phys, phys + length) cannot be read.
    virtual bool read(u64 phys, void* dst, usize length) = 0;

protected:
    ~PhysicalReader() = default;
};

// Storage with a fixed capacity that counts what did not fit, so truncation can be reported.
template <typename T, u32 Capacity>
struct FixedList {
    T items[Capacity];
    u32 count = 0;
    u32 dropped = 0;

    static constexpr u32 capacity() { return Capacity; }
    bool push(const T& item) {
        if (count == Capacity) {
            ++dropped;
            return false;
        }
        items[count++] = item;
        return true;
    }
    const T& operator[](u32 index) const {
        LAMINA_ASSERT(index < count);
        return items[index];
    }
    const T* begin() const { return items; }
    const T* end() const { return items + count; }
};

// ---- RSDP (ACPI 6.5 5.2.5) ----

struct Rsdp {
    u8 revision = 0;  // 0: ACPI 1.0 (RSDT only); 2 and up: the XSDT may be used
    char oem_id[7] = {};
    u32 rsdt_address = 0;
    u64 xsdt_address = 0;  // 0 unless revision >= 2 and the extended checksum held
    u64 phys = 0;          // where find_rsdp found it; 0 for a boot loader's copy
};

// Validates a copy of the RSDP as a boot loader hands it over (Multiboot2 ACPI tags: 20 bytes
// for ACPI 1.0, the whole structure for 2.0+).
bool parse_rsdp(const u8* bytes, usize size, Rsdp& out, Sink& log);

// Scans for the RSDP where BIOS systems keep it (ACPI 6.5 5.2.5.1): the first KiB of the EBDA,
// then 0xE0000..0xFFFFF, on 16-byte boundaries. For boots without a Multiboot2 ACPI tag.
bool find_rsdp(PhysicalReader& reader, Rsdp& out, Sink& log);

// ---- Decoded tables ----

// ACPI 6.5 5.2.3.2, Table 5.1 (address space ids).
enum class AddressSpace : u8 {
    SystemMemory = 0,
    SystemIo = 1,
    PciConfig = 2,
    FunctionalFixedHardware = 0x7F,
};

// Generic Address Structure (ACPI 6.5 5.2.3.2). address == 0 means "not provided".
struct Gas {
    AddressSpace space = AddressSpace::SystemMemory;
    u8 bit_width = 0;
    u8 bit_offset = 0;
    u8 access_size = 0;  // 0: undefined (legacy reasons), 1..4: byte, word, dword, qword
    u64 address = 0;

    bool present() const { return address != 0; }
};

// MPS INTI flags (ACPI 6.5 Table 5.26); the enumerators carry the encoded values.
enum class Polarity : u8 { BusDefault = 0, ActiveHigh = 1, Reserved = 2, ActiveLow = 3 };
enum class Trigger : u8 { BusDefault = 0, Edge = 1, Reserved = 2, Level = 3 };

constexpr u32 kMaxCpus = 256;
constexpr u32 kMaxIoApics = 16;
constexpr u32 kMaxInterruptOverrides = 32;
constexpr u32 kMaxNmiSources = 16;
constexpr u32 kMaxLocalNmis = kMaxCpus;  // firmware often lists one per processor
constexpr u32 kMaxMcfgSegments = 16;
constexpr u32 kMaxTables = 64;

// A processor the OS may use: enabled now, or online capable (may be brought up later).
// Entries with neither flag are unusable and not listed (ACPI 6.5 Table 5.23).
struct Cpu {
    u32 apic_id = 0;
    u32 acpi_uid = 0;
    bool enabled = false;  // false: online capable only
};

struct IoApic {
    u8 id = 0;
    u32 address = 0;
    u32 gsi_base = 0;
};

// An ISA IRQ that is not identity-mapped to a GSI or is not edge/high (ACPI 6.5 5.2.12.5).
struct InterruptOverride {
    u8 bus = 0;
    u8 source = 0;  // ISA IRQ
    u32 gsi = 0;
    Polarity polarity = Polarity::BusDefault;
    Trigger trigger = Trigger::BusDefault;
};

// A GSI wired to NMI (ACPI 6.5 5.2.12.6).
struct NmiSource {
    u32 gsi = 0;
    Polarity polarity = Polarity::BusDefault;
    Trigger trigger = Trigger::BusDefault;
};

constexpr u32 kAllProcessors = 0xFFFFFFFF;

// A local APIC LINT pin wired to NMI (ACPI 6.5 5.2.12.7 and 5.2.12.13).
struct LocalNmi {
    u32 acpi_uid = 0;  // kAllProcessors for every processor
    Polarity polarity = Polarity::BusDefault;
    Trigger trigger = Trigger::BusDefault;
    u8 lint = 0;
};

// MADT, signature "APIC" (ACPI 6.5 5.2.12).
struct Madt {
    bool present = false;
    u64 local_apic_address = 0;  // the 64-bit override (type 5) when there is one
    bool pcat_compat = false;    // dual 8259 PICs present: mask them before using the IOAPIC
    FixedList<Cpu, kMaxCpus> cpus;
    u32 enabled_cpus = 0;   // of those listed in cpus
    u32 unusable_cpus = 0;  // entries neither enabled nor online capable
    FixedList<IoApic, kMaxIoApics> io_apics;
    FixedList<InterruptOverride, kMaxInterruptOverrides> overrides;
    FixedList<NmiSource, kMaxNmiSources> nmi_sources;
    FixedList<LocalNmi, kMaxLocalNmis> local_nmis;
    bool walk_stopped = false;  // a malformed entry ended the walk; later entries are missing
};

// FADT, signature "FACP" (ACPI 6.5 5.2.9).
struct Fadt {
    // Fixed feature flags (Table 5.10) and IA-PC boot architecture flags (Table 5.11).
    static constexpr u32 kTimerValueExtended = 1u << 8;
    static constexpr u32 kResetRegisterSupported = 1u << 10;
    static constexpr u32 kHardwareReducedAcpi = 1u << 20;
    static constexpr u16 kBootLegacyDevices = 1u << 0;
    static constexpr u16 kBoot8042 = 1u << 1;
    static constexpr u16 kBootVgaNotPresent = 1u << 2;
    static constexpr u16 kBootMsiNotSupported = 1u << 3;
    static constexpr u16 kBootCmosRtcNotPresent = 1u << 5;

    bool present = false;
    u8 revision = 0;
    u32 length = 0;
    u32 flags = 0;
    // A FADT older than revision 3 (ACPI 2.0) has no boot architecture flags: it then holds
    // what a PC/AT has (legacy devices and an 8042), as Linux assumes.
    u16 boot_arch = 0;
    // The fixed-hardware fields below stay zero on hardware-reduced platforms, which the spec
    // tells the OS to ignore them on (5.2.9).
    u16 sci_interrupt = 0;
    u32 smi_command_port = 0;
    Gas pm1a_event;
    Gas pm1b_event;
    Gas pm1a_control;
    Gas pm1b_control;
    Gas pm_timer;
    Gas reset_register;  // present only when supported and well-formed
    u8 reset_value = 0;
    u8 century = 0;  // CMOS RTC index of the century, 0 if none
    u64 dsdt_address = 0;
    u64 facs_address = 0;

    bool hardware_reduced() const { return flags & kHardwareReducedAcpi; }
    bool reset_supported() const { return reset_register.present(); }
    u8 pm_timer_bits() const { return flags & kTimerValueExtended ? 32 : 24; }
    bool has_8042() const { return boot_arch & kBoot8042; }
    bool vga_absent() const { return boot_arch & kBootVgaNotPresent; }
    bool legacy_devices() const { return boot_arch & kBootLegacyDevices; }
    bool msi_unsupported() const { return boot_arch & kBootMsiNotSupported; }
    bool cmos_rtc_absent() const { return boot_arch & kBootCmosRtcNotPresent; }
};

// HPET description table, signature "HPET" (IA-PC HPET specification 1.0a, table 3).
struct Hpet {
    bool present = false;
    u32 event_timer_block_id = 0;  // a copy of the low half of the capabilities register
    u64 base_address = 0;          // system memory
    u8 number = 0;
    u16 minimum_tick = 0;  // in main counter ticks, for periodic mode
    u8 page_protection = 0;

    u8 hardware_revision() const { return event_timer_block_id & 0xFF; }
    // The field holds the index of the last comparator.
    u8 comparator_count() const { return ((event_timer_block_id >> 8) & 0x1F) + 1; }
    bool counter_64bit() const { return event_timer_block_id & (1u << 13); }
    bool legacy_replacement_capable() const { return event_timer_block_id & (1u << 15); }
    u16 pci_vendor_id() const { return event_timer_block_id >> 16; }
};

// One ECAM window, from the MCFG (PCI Firmware specification 3.2, 4.1.2).
struct McfgSegment {
    u64 base_address = 0;
    u16 segment_group = 0;
    u8 start_bus = 0;
    u8 end_bus = 0;
};

struct Mcfg {
    bool present = false;
    FixedList<McfgSegment, kMaxMcfgSegments> segments;
};

// A table kept undecoded for a later consumer (the IOMMU drivers for DMAR and IVRS).
struct TableLocation {
    u64 phys = 0;
    u32 length = 0;

    bool present() const { return length != 0; }
};

enum class TableStatus : u8 { Valid, Unreadable, BadLength, BadChecksum };

// What the root table pointed at, valid or not, for logging and the acpi dump command.
struct TableInfo {
    char signature[5] = {};  // "????" when the header could not be read
    char oem_id[7] = {};
    char oem_table_id[9] = {};
    u64 phys = 0;
    u32 length = 0;
    u8 revision = 0;
    TableStatus status = TableStatus::Unreadable;

    bool checksum_ok() const { return status == TableStatus::Valid; }
};

// Everything parse_platform learnt. About 9 KiB: keep it in static storage, not on a stack.
struct Platform {
    Rsdp rsdp;
    bool uses_xsdt = false;
    u64 root_table_address = 0;
    FixedList<TableInfo, kMaxTables> tables;  // the root table first, in walk order
    Madt madt;
    Fadt fadt;
    Hpet hpet;
    Mcfg mcfg;
    TableLocation dmar;
    TableLocation ivrs;
};

// Walks the root table the RSDP names and decodes the tables above into out (overwritten).
// Returns false only when there is no usable root table; a bad table is reported and skipped,
// and a second table with the signature of one already decoded is ignored.
bool parse_platform(PhysicalReader& reader, const Rsdp& rsdp, Platform& out, Sink& log);

// One line per table seen: signature, address, length, revision, OEM ids, status.
void print_tables(const Platform& platform, Sink& out);

const char* to_string(TableStatus status);

}  // namespace lamina::acpi
