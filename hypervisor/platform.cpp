#include <hypervisor/platform.h>

#include <boot/multiboot2/multiboot2.h>
#include <hypervisor/log.h>
#include <hypervisor/memory.h>
#include <lamina/string.h>

namespace lamina::platform {
namespace {

acpi::Platform platform;
bool have_acpi = false;

// Reads physical memory through the boot physmap (phase 1: the first 4 GiB only).
class BootPhysmapReader final : public acpi::PhysicalReader {
public:
    bool read(u64 phys, void* dst, usize length) override {
        u64 end;
        if (add_overflows(phys, length, &end) || end > 4 * GiB || phys < 4096) return false;
        str::copy_bytes(dst, memory::phys_to_virt(phys), length);
        return true;
    }
};

// Collects parser diagnostics and logs them one line each.
class LogLineSink final : public Sink {
public:
    void write(const char* text, usize length) override {
        for (usize i = 0; i < length; ++i) {
            if (text[i] == '\n' || used_ == sizeof(line_) - 1) flush();
            if (text[i] != '\n') line_[used_++] = text[i];
        }
    }
    ~LogLineSink() { flush(); }

private:
    void flush() {
        if (used_ == 0) return;
        line_[used_] = '\0';
        log::warn("{}", line_);
        used_ = 0;
    }
    char line_[200];
    usize used_ = 0;
};

}  // namespace

const acpi::Platform& acpi() { return platform; }

void discover_acpi(const mb2::BootInfo& boot_info) {
    BootPhysmapReader reader;
    LogLineSink diagnostics;
    acpi::Rsdp rsdp;
    bool found = false;
    if (boot_info.has(mb2::TagType::AcpiNewRsdp))
        found = acpi::parse_rsdp(boot_info.acpi_new_rsdp.bytes, boot_info.acpi_new_rsdp.length, rsdp, diagnostics);
    if (!found && boot_info.has(mb2::TagType::AcpiOldRsdp))
        found = acpi::parse_rsdp(boot_info.acpi_old_rsdp.bytes, boot_info.acpi_old_rsdp.length, rsdp, diagnostics);
    if (!found) found = acpi::find_rsdp(reader, rsdp, diagnostics);
    if (!found) {
        log::error("acpi: no RSDP; assuming one CPU and no timers but the PIT");
        return;
    }
    have_acpi = acpi::parse_platform(reader, rsdp, platform, diagnostics);
}

usize firmware_table_ranges(u64* bases, u64* lengths, usize capacity) {
    usize n = 0;
    for (const acpi::TableInfo& table : platform.tables) {
        if (n == capacity) break;
        bases[n] = table.phys;
        lengths[n] = table.length;
        ++n;
    }
    return n;
}

u32 present_cpu_count() {
    u32 count = platform.madt.present ? platform.madt.cpus.count : 0;
    return count ? count : 1;
}

u32 usable_apic_ids(u32* out, u32 capacity) {
    u32 n = 0;
    for (const acpi::Cpu& cpu : platform.madt.cpus) {
        if (n < capacity) out[n++] = cpu.apic_id;
    }
    return n;
}

void report() {
    if (!have_acpi) return;
    log::info("acpi: {} via {} at {:#x}, {} tables", platform.rsdp.oem_id,
              platform.uses_xsdt ? "XSDT" : "RSDT", platform.root_table_address, platform.tables.count);
    for (const acpi::TableInfo& t : platform.tables)
        log::debug("acpi: {} at {:#x} length {} rev {} oem {} {}", t.signature, t.phys, t.length,
                   t.revision, t.oem_id, acpi::to_string(t.status));
    const acpi::Madt& madt = platform.madt;
    log::info("acpi: {} CPUs ({} enabled), {} IOAPICs, {} overrides, local APIC at {:#x}",
              madt.cpus.count, madt.enabled_cpus, madt.io_apics.count, madt.overrides.count,
              madt.local_apic_address);
    for (const acpi::IoApic& io : madt.io_apics)
        log::info("acpi: IOAPIC id {} at {:#x}, GSI base {}", io.id, io.address, io.gsi_base);
    if (platform.hpet.present)
        log::info("acpi: HPET at {:#x}, {} comparators", platform.hpet.base_address,
                  platform.hpet.comparator_count());
    for (const acpi::McfgSegment& s : platform.mcfg.segments)
        log::info("acpi: PCI segment {} buses {}-{} at {:#x}", s.segment_group, s.start_bus, s.end_bus,
                  s.base_address);
    if (platform.dmar.present()) log::info("acpi: DMAR at {:#x} (kept for the IOMMU)", platform.dmar.phys);
    if (platform.ivrs.present()) log::info("acpi: IVRS at {:#x} (kept for the IOMMU)", platform.ivrs.phys);
}

}  // namespace lamina::platform
