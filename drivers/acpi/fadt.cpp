// FADT decoding (ACPI 6.5 5.2.9). The table grew over the revisions: ACPI 1.0's is 116 bytes,
// 2.0 added the reset register and the 64-bit X_ fields, later ones more. Each field is used
// only when the table is long enough to hold it.
#include <drivers/acpi/internal.h>

#include <stddef.h>

namespace lamina::acpi::detail {
namespace {

// Table 5.9.
struct LAMINA_PACKED FadtLayout {
    HeaderLayout header;
    u32 firmware_ctrl;
    u32 dsdt;
    u8 reserved0;
    u8 preferred_pm_profile;
    u16 sci_int;
    u32 smi_cmd;
    u8 acpi_enable;
    u8 acpi_disable;
    u8 s4bios_req;
    u8 pstate_cnt;
    u32 pm1a_evt_blk;
    u32 pm1b_evt_blk;
    u32 pm1a_cnt_blk;
    u32 pm1b_cnt_blk;
    u32 pm2_cnt_blk;
    u32 pm_tmr_blk;
    u32 gpe0_blk;
    u32 gpe1_blk;
    u8 pm1_evt_len;
    u8 pm1_cnt_len;
    u8 pm2_cnt_len;
    u8 pm_tmr_len;
    u8 gpe0_blk_len;
    u8 gpe1_blk_len;
    u8 gpe1_base;
    u8 cst_cnt;
    u16 p_lvl2_lat;
    u16 p_lvl3_lat;
    u16 flush_size;
    u16 flush_stride;
    u8 duty_offset;
    u8 duty_width;
    u8 day_alrm;
    u8 mon_alrm;
    u8 century;
    u16 iapc_boot_arch;
    u8 reserved1;
    u32 flags;
    // ---- end of the ACPI 1.0 table ----
    GasLayout reset_reg;
    u8 reset_value;
    u16 arm_boot_arch;
    u8 minor_version;
    u64 x_firmware_ctrl;
    u64 x_dsdt;
    GasLayout x_pm1a_evt_blk;
    GasLayout x_pm1b_evt_blk;
    GasLayout x_pm1a_cnt_blk;
    GasLayout x_pm1b_cnt_blk;
    GasLayout x_pm2_cnt_blk;
    GasLayout x_pm_tmr_blk;
    GasLayout x_gpe0_blk;
    GasLayout x_gpe1_blk;
    GasLayout sleep_control_reg;
    GasLayout sleep_status_reg;
    u64 hypervisor_vendor_identity;
};
static_assert(offsetof(FadtLayout, century) == 108 && offsetof(FadtLayout, flags) == 112);
static_assert(offsetof(FadtLayout, reset_reg) == 116 && offsetof(FadtLayout, x_dsdt) == 140);
static_assert(offsetof(FadtLayout, x_pm_tmr_blk) == 208 && sizeof(FadtLayout) == 276);

constexpr u32 kFadtV1Length = offsetof(FadtLayout, reset_reg);
constexpr u8 kFadtBootArchRevision = 3;

class FadtDecoder {
public:
    FadtDecoder(const Table& table, const FadtLayout& layout, Sink& log)
        : table_(table), layout_(layout), log_(log) {}

    // Whether the table holds the field at [offset, offset + size).
    bool holds(usize offset, usize size) const { return table_.length() >= offset + size; }

    // 5.2.9: a nonzero X_ field supersedes its 32-bit twin, which is an I/O port block of
    // legacy_length bytes.
    Gas choose_block(const char* name, u32 legacy_port, u8 legacy_length, usize extended_offset,
                     const GasLayout& extended) const {
        Gas legacy{AddressSpace::SystemIo, static_cast<u8>(legacy_length * 8), 0, 0, legacy_port};
        if (!holds(extended_offset, sizeof(GasLayout)) || extended.address == 0) {
            return legacy_port != 0 ? legacy : Gas{};
        }
        Gas gas = to_gas(extended);
        if (legacy_port != 0 && legacy_port != gas.address) {
            table_.diagnose(log_, "{} {:#x} and X_{} {:#x} differ, using X_{}", name, legacy_port,
                            name, gas.address, name);
        }
        // Some firmware leaves the width of the X_ block 0; the legacy length still tells it.
        if (gas.bit_width == 0) gas.bit_width = legacy.bit_width;
        return gas;
    }

    void decode_fixed_hardware(Fadt& out) const {
        const FadtLayout& f = layout_;
        out.sci_interrupt = f.sci_int;
        out.smi_command_port = f.smi_cmd;
        out.pm1a_event = choose_block("PM1a_EVT_BLK", f.pm1a_evt_blk, f.pm1_evt_len,
                                      offsetof(FadtLayout, x_pm1a_evt_blk), f.x_pm1a_evt_blk);
        out.pm1b_event = choose_block("PM1b_EVT_BLK", f.pm1b_evt_blk, f.pm1_evt_len,
                                      offsetof(FadtLayout, x_pm1b_evt_blk), f.x_pm1b_evt_blk);
        out.pm1a_control = choose_block("PM1a_CNT_BLK", f.pm1a_cnt_blk, f.pm1_cnt_len,
                                        offsetof(FadtLayout, x_pm1a_cnt_blk), f.x_pm1a_cnt_blk);
        out.pm1b_control = choose_block("PM1b_CNT_BLK", f.pm1b_cnt_blk, f.pm1_cnt_len,
                                        offsetof(FadtLayout, x_pm1b_cnt_blk), f.x_pm1b_cnt_blk);
        out.pm_timer = choose_block("PM_TMR_BLK", f.pm_tmr_blk, f.pm_tmr_len,
                                    offsetof(FadtLayout, x_pm_tmr_blk), f.x_pm_tmr_blk);
    }

    // Table 5.9, RESET_REG: system I/O, system memory or PCI configuration space, 8 bits wide
    // at bit offset 0.
    void decode_reset_register(Fadt& out) const {
        if (!(layout_.flags & Fadt::kResetRegisterSupported)) return;
        if (!holds(offsetof(FadtLayout, reset_value), sizeof(layout_.reset_value))) {
            table_.diagnose(log_,
                            "RESET_REG_SUP set but the table ends before RESET_REG; "
                            "reset register ignored");
            return;
        }
        Gas reset = to_gas(layout_.reset_reg);
        bool space_ok = reset.space == AddressSpace::SystemIo ||
                        reset.space == AddressSpace::SystemMemory ||
                        reset.space == AddressSpace::PciConfig;
        if (!space_ok || reset.bit_width != 8 || reset.bit_offset != 0 || reset.address == 0) {
            table_.diagnose(log_,
                            "unusable RESET_REG (space {}, width {}, offset {}, address "
                            "{:#x}); reset register ignored",
                            static_cast<u8>(reset.space), reset.bit_width, reset.bit_offset,
                            reset.address);
            return;
        }
        out.reset_register = reset;
        out.reset_value = layout_.reset_value;
    }

    u64 choose_address(u32 legacy, usize extended_offset, u64 extended) const {
        return holds(extended_offset, sizeof(u64)) && extended != 0 ? extended : legacy;
    }

private:
    const Table& table_;
    const FadtLayout& layout_;
    Sink& log_;
};

}  // namespace

bool decode_fadt(const Table& table, Fadt& out, Sink& log) {
    if (table.length() < kFadtV1Length) {
        table.diagnose(log, "length {} too short for a FADT ({}), table skipped", table.length(),
                       kFadtV1Length);
        return false;
    }
    FadtLayout layout;
    if (!table.read_prefix(&layout, sizeof(layout))) {
        table.diagnose(log, "unreadable, table skipped");
        return false;
    }
    FadtDecoder decoder(table, layout, log);
    out.present = true;
    out.revision = layout.header.revision;
    out.length = table.length();
    out.flags = layout.flags;
    // IAPC_BOOT_ARCH arrived with ACPI 2.0, whose FADT is revision 3; like Linux, trust it
    // from there on (revision 2 was an interim ACPI 1.0b extension).
    out.boot_arch = layout.header.revision >= kFadtBootArchRevision
                        ? layout.iapc_boot_arch
                        : static_cast<u16>(Fadt::kBootLegacyDevices | Fadt::kBoot8042);
    out.century = layout.century;
    // 5.2.9: hardware-reduced platforms have none of the fixed ACPI hardware, and the OS must
    // ignore the fields that describe it.
    if (!out.hardware_reduced()) decoder.decode_fixed_hardware(out);
    decoder.decode_reset_register(out);
    out.dsdt_address =
        decoder.choose_address(layout.dsdt, offsetof(FadtLayout, x_dsdt), layout.x_dsdt);
    out.facs_address = decoder.choose_address(
        layout.firmware_ctrl, offsetof(FadtLayout, x_firmware_ctrl), layout.x_firmware_ctrl);
    return true;
}

}  // namespace lamina::acpi::detail
