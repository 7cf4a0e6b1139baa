// ACPI table parser: RSDP validation and scanning, root table selection, table validation and
// the MADT, FADT, HPET and MCFG decoders, against tables built in memory here (values modelled
// on QEMU's q35/i440fx tables).
#include <catch2/catch.hpp>

#include <drivers/acpi/acpi.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace lamina;
using namespace lamina::acpi;

namespace {

using Bytes = std::vector<u8>;

// Physical memory made of separate byte ranges; everything in between is unreadable, so a
// parser that reads one byte too far fails loudly.
class FakeMemory final : public PhysicalReader {
public:
    void add(u64 phys, Bytes bytes) { regions_[phys] = std::move(bytes); }

    bool read(u64 phys, void* dst, usize length) override {
        auto* out = static_cast<u8*>(dst);
        for (usize i = 0; i < length; ++i) {
            u64 address = phys + i;
            if (address < phys) return false;  // wrapped around
            const u8* byte = find(address);
            if (byte == nullptr) return false;
            out[i] = *byte;
        }
        return true;
    }

private:
    const u8* find(u64 address) const {
        auto it = regions_.upper_bound(address);
        if (it == regions_.begin()) return nullptr;
        --it;
        if (address - it->first >= it->second.size()) return nullptr;
        return &it->second[address - it->first];
    }
    std::map<u64, Bytes> regions_;
};

class LogSink final : public Sink {
public:
    void write(const char* text, usize length) override { text_.append(text, length); }
    const std::string& text() const { return text_; }
    bool contains(const std::string& needle) const {
        return text_.find(needle) != std::string::npos;
    }
    bool empty() const { return text_.empty(); }
    usize lines() const {
        usize n = 0;
        for (char c : text_) n += c == '\n';
        return n;
    }

private:
    std::string text_;
};

void put(Bytes& b, usize offset, u64 value, usize size) {
    REQUIRE(offset + size <= b.size());
    for (usize i = 0; i < size; ++i) b[offset + i] = static_cast<u8>(value >> (8 * i));
}

// The byte at checksum_offset makes the first length bytes sum to 0.
void fix_checksum(Bytes& b, usize checksum_offset, usize length) {
    b[checksum_offset] = 0;
    u8 sum = 0;
    for (usize i = 0; i < length; ++i) sum = static_cast<u8>(sum + b[i]);
    b[checksum_offset] = static_cast<u8>(-sum);
}

// A description table: the 36-byte header (ACPI 6.5 Table 5.4) then the body appended to it.
struct TableBuilder {
    Bytes bytes;

    explicit TableBuilder(const char* signature, u8 revision = 1) : bytes(36, 0) {
        std::memcpy(&bytes[0], signature, 4);
        bytes[8] = revision;
        std::memcpy(&bytes[10], "BOCHS ", 6);
        std::memcpy(&bytes[16], "BXPC    ", 8);
        put(bytes, 24, 1, 4);
        std::memcpy(&bytes[28], "BXPC", 4);
        put(bytes, 32, 1, 4);
    }
    TableBuilder& byte(u8 v) { return append(v, 1); }
    TableBuilder& word(u16 v) { return append(v, 2); }
    TableBuilder& dword(u32 v) { return append(v, 4); }
    TableBuilder& qword(u64 v) { return append(v, 8); }
    TableBuilder& zeros(usize n) {
        bytes.resize(bytes.size() + n, 0);
        return *this;
    }
    TableBuilder& gas(u8 space, u8 width, u8 offset, u8 access, u64 address) {
        return byte(space).byte(width).byte(offset).byte(access).qword(address);
    }
    TableBuilder& append(u64 v, usize size) {
        bytes.resize(bytes.size() + size);
        put(bytes, bytes.size() - size, v, size);
        return *this;
    }
    // Sets the length to the bytes built and fixes the checksum.
    Bytes finish() const {
        Bytes t = bytes;
        put(t, 4, t.size(), 4);
        fix_checksum(t, 9, t.size());
        return t;
    }
};

// MADT interrupt controller structures (ACPI 6.5 Tables 5.22 to 5.31).
TableBuilder madt(u32 local_apic = 0xFEE00000, u32 flags = 1) {
    TableBuilder t("APIC", 1);
    t.dword(local_apic).dword(flags);
    return t;
}
void lapic(TableBuilder& t, u8 uid, u8 id, u32 flags) {
    t.byte(0).byte(8).byte(uid).byte(id).dword(flags);
}
void ioapic(TableBuilder& t, u8 id, u32 address, u32 gsi_base) {
    t.byte(1).byte(12).byte(id).byte(0).dword(address).dword(gsi_base);
}
void iso(TableBuilder& t, u8 source, u32 gsi, u16 flags) {
    t.byte(2).byte(10).byte(0).byte(source).dword(gsi).word(flags);
}
void nmi_source(TableBuilder& t, u16 flags, u32 gsi) { t.byte(3).byte(8).word(flags).dword(gsi); }
void lapic_nmi(TableBuilder& t, u8 uid, u16 flags, u8 lint) {
    t.byte(4).byte(6).byte(uid).word(flags).byte(lint);
}
void lapic_address_override(TableBuilder& t, u64 address) {
    t.byte(5).byte(12).word(0).qword(address);
}
void x2apic(TableBuilder& t, u32 id, u32 uid, u32 flags) {
    t.byte(9).byte(16).word(0).dword(id).dword(flags).dword(uid);
}
void x2apic_nmi(TableBuilder& t, u32 uid, u16 flags, u8 lint) {
    t.byte(10).byte(12).word(flags).dword(uid).byte(lint).zeros(3);
}

constexpr u16 kLevelHigh = 0xD;  // INTI flags: active high (01), level (11)

// Like QEMU's: n LAPICs, IOAPIC 0 at 0xfec00000, IRQ0 -> GSI2, IRQs 5, 9, 10, 11 level/high,
// LINT1 NMI on every processor.
Bytes qemu_madt(u8 cpus) {
    TableBuilder t = madt();
    for (u8 i = 0; i < cpus; ++i) lapic(t, i, i, 1);
    ioapic(t, 0, 0xFEC00000, 0);
    iso(t, 0, 2, 0);
    for (u8 irq : {5, 9, 10, 11}) iso(t, irq, irq, kLevelHigh);
    lapic_nmi(t, 0xFF, 0, 1);
    return t.finish();
}

// FADT field offsets (ACPI 6.5 Table 5.9).
namespace fadt_at {
constexpr usize kFirmwareCtrl = 36, kDsdt = 40, kSciInt = 46, kSmiCmd = 48, kPm1aEvt = 56,
                kPm1aCnt = 64, kPmTmr = 76, kPm1EvtLen = 88, kPm1CntLen = 89, kPmTmrLen = 91,
                kCentury = 108, kBootArch = 109, kFlags = 112, kResetReg = 116, kResetValue = 128,
                kXFirmwareCtrl = 132, kXDsdt = 140, kXPm1aEvt = 148, kXPm1aCnt = 172, kXPmTmr = 208;
}

void put_gas(Bytes& b, usize offset, u8 space, u8 width, u64 address) {
    put(b, offset, space, 1);
    put(b, offset + 1, width, 1);
    put(b, offset + 2, 0, 1);
    put(b, offset + 3, 0, 1);
    put(b, offset + 4, address, 8);
}

// A FADT with the ports of QEMU's PIIX4 PM (0x600 block), cut to length bytes.
Bytes qemu_fadt(u8 revision, usize length, u32 flags) {
    TableBuilder t("FACP", revision);
    t.zeros(length - 36);
    Bytes& b = t.bytes;
    using namespace fadt_at;
    put(b, kFirmwareCtrl, 0x7FFE0000, 4);
    put(b, kDsdt, 0x7FFE0040, 4);
    put(b, kSciInt, 9, 2);
    put(b, kSmiCmd, 0xB2, 4);
    put(b, kPm1aEvt, 0x600, 4);
    put(b, kPm1aCnt, 0x604, 4);
    put(b, kPmTmr, 0x608, 4);
    put(b, kPm1EvtLen, 4, 1);
    put(b, kPm1CntLen, 2, 1);
    put(b, kPmTmrLen, 4, 1);
    put(b, kCentury, 0x32, 1);
    put(b, kFlags, flags, 4);
    return t.finish();
}

void refinish(Bytes& table) { fix_checksum(table, 9, table.size()); }

Bytes rsdp_bytes(u8 revision, u32 rsdt, u64 xsdt) {
    Bytes b(revision >= 2 ? 36 : 20, 0);
    std::memcpy(&b[0], "RSD PTR ", 8);
    std::memcpy(&b[9], "BOCHS ", 6);
    b[15] = revision;
    put(b, 16, rsdt, 4);
    if (revision >= 2) {
        put(b, 20, 36, 4);
        put(b, 24, xsdt, 8);
    }
    fix_checksum(b, 8, 20);
    if (revision >= 2) fix_checksum(b, 32, 36);  // covers the first checksum too
    return b;
}

// Firmware memory with tables laid out apart from each other.
struct Firmware {
    FakeMemory memory;
    u64 next = 0x7FFE1000;

    u64 place(const Bytes& bytes) {
        u64 at = next;
        memory.add(at, bytes);
        next += (bytes.size() + 0x1FF) & ~u64{0xFF};  // leave an unreadable gap
        return at;
    }
    u64 root(const char* signature, const std::vector<u64>& entries) {
        TableBuilder t(signature, 1);
        for (u64 e : entries)
            std::strcmp(signature, "XSDT") == 0 ? t.qword(e) : t.dword(static_cast<u32>(e));
        return place(t.finish());
    }
};

Rsdp rsdp_v1(u64 rsdt) {
    Rsdp r;
    r.rsdt_address = static_cast<u32>(rsdt);
    return r;
}
Rsdp rsdp_v2(u64 rsdt, u64 xsdt) {
    Rsdp r = rsdp_v1(rsdt);
    r.revision = 2;
    r.xsdt_address = xsdt;
    return r;
}

struct Result {
    std::unique_ptr<Platform> platform = std::make_unique<Platform>();
    LogSink log;
    bool ok = false;
};

std::unique_ptr<Result> parse(FakeMemory& memory, const Rsdp& rsdp) {
    auto r = std::make_unique<Result>();
    r->ok = parse_platform(memory, rsdp, *r->platform, r->log);
    return r;
}

// Parses one table through an XSDT.
std::unique_ptr<Result> parse_one(const Bytes& table) {
    auto firmware = std::make_unique<Firmware>();
    u64 xsdt = firmware->root("XSDT", {firmware->place(table)});
    return parse(firmware->memory, rsdp_v2(0, xsdt));
}

const TableInfo* listed(const Platform& p, const char* signature) {
    for (const TableInfo& t : p.tables)
        if (std::strcmp(t.signature, signature) == 0) return &t;
    return nullptr;
}

}  // namespace

// ---- RSDP ----

TEST_CASE("acpi: RSDP revision 0 copy gives the RSDT", "[acpi]") {
    Bytes bytes = rsdp_bytes(0, 0x7FFE1000, 0);
    Rsdp rsdp;
    LogSink log;
    REQUIRE(parse_rsdp(bytes.data(), bytes.size(), rsdp, log));
    CHECK(rsdp.revision == 0);
    CHECK(rsdp.rsdt_address == 0x7FFE1000);
    CHECK(rsdp.xsdt_address == 0);
    CHECK(std::string(rsdp.oem_id) == "BOCHS ");
    CHECK(rsdp.phys == 0);
    CHECK(log.empty());
}

TEST_CASE("acpi: RSDP revision 2 copy gives the XSDT", "[acpi]") {
    Bytes bytes = rsdp_bytes(2, 0x7FFE1000, 0x17FFE2000);
    Rsdp rsdp;
    LogSink log;
    REQUIRE(parse_rsdp(bytes.data(), bytes.size(), rsdp, log));
    CHECK(rsdp.revision == 2);
    CHECK(rsdp.rsdt_address == 0x7FFE1000);
    CHECK(rsdp.xsdt_address == 0x17FFE2000);
    CHECK(log.empty());
}

TEST_CASE("acpi: malformed RSDP copies are refused", "[acpi]") {
    Rsdp rsdp;
    LogSink log;
    SECTION("bad checksum") {
        Bytes bytes = rsdp_bytes(0, 0x1000, 0);
        bytes[16] ^= 1;
        CHECK_FALSE(parse_rsdp(bytes.data(), bytes.size(), rsdp, log));
        CHECK(log.text() == "acpi: RSDP from the boot loader: bad checksum, ignored\n");
    }
    SECTION("bad extended checksum") {
        Bytes bytes = rsdp_bytes(2, 0x1000, 0x2000);
        bytes[24] ^= 1;  // in the XSDT address, covered only by the extended checksum
        CHECK_FALSE(parse_rsdp(bytes.data(), bytes.size(), rsdp, log));
        CHECK(log.contains("bad extended checksum"));
    }
    SECTION("bad signature") {
        Bytes bytes = rsdp_bytes(0, 0x1000, 0);
        bytes[0] = 'X';
        CHECK_FALSE(parse_rsdp(bytes.data(), bytes.size(), rsdp, log));
        CHECK(log.contains("bad signature"));
    }
    SECTION("too short") {
        Bytes bytes = rsdp_bytes(0, 0x1000, 0);
        CHECK_FALSE(parse_rsdp(bytes.data(), 19, rsdp, log));
        CHECK_FALSE(parse_rsdp(nullptr, 0, rsdp, log));
        CHECK(log.lines() == 2);
    }
    SECTION("extended length out of range") {
        for (u32 length : {20u, 35u, 4097u}) {
            Bytes bytes = rsdp_bytes(2, 0x1000, 0x2000);
            put(bytes, 20, length, 4);
            fix_checksum(bytes, 32, 36);
            CHECK_FALSE(parse_rsdp(bytes.data(), bytes.size(), rsdp, log));
        }
        CHECK(log.lines() == 3);
        CHECK(log.contains("length 4097 outside 36..4096"));
    }
    SECTION("extended length past the bytes given") {
        Bytes bytes = rsdp_bytes(2, 0x1000, 0x2000);
        put(bytes, 20, 40, 4);
        fix_checksum(bytes, 32, 36);
        CHECK_FALSE(parse_rsdp(bytes.data(), bytes.size(), rsdp, log));
        CHECK(log.contains("cannot read its 40 bytes"));
    }
}

TEST_CASE("acpi: a revision 2 RSDP cut to its ACPI 1.0 part falls back to the RSDT", "[acpi]") {
    Bytes bytes = rsdp_bytes(2, 0x1000, 0x2000);
    Rsdp rsdp;
    LogSink log;
    REQUIRE(parse_rsdp(bytes.data(), 20, rsdp, log));
    CHECK(rsdp.revision == 2);
    CHECK(rsdp.rsdt_address == 0x1000);
    CHECK(rsdp.xsdt_address == 0);
    CHECK(log.contains("only the ACPI 1.0 part"));
}

TEST_CASE("acpi: find_rsdp scans the EBDA, then the BIOS area", "[acpi]") {
    FakeMemory memory;
    Rsdp rsdp;
    LogSink log;
    Bytes bios_area(0x20000, 0);
    Bytes bios_rsdp = rsdp_bytes(2, 0xB0000, 0xC0000);
    std::memcpy(&bios_area[0x15A40], bios_rsdp.data(), bios_rsdp.size());  // 0xF5A40, SeaBIOS-like

    SECTION("found in the EBDA first") {
        memory.add(0x40E, {0xC0, 0x9F});  // EBDA segment 0x9FC0 -> 0x9FC00
        Bytes ebda(0x400, 0);
        Bytes ebda_rsdp = rsdp_bytes(0, 0xA0000, 0);
        std::memcpy(&ebda[0x3E0], ebda_rsdp.data(), ebda_rsdp.size());
        memory.add(0x9FC00, ebda);
        memory.add(0xE0000, bios_area);
        REQUIRE(find_rsdp(memory, rsdp, log));
        CHECK(rsdp.phys == 0x9FFE0);
        CHECK(rsdp.rsdt_address == 0xA0000);
    }
    SECTION("found in the BIOS area, past a corrupt candidate and a misaligned copy") {
        memory.add(0x40E, {0, 0});
        Bytes corrupt = rsdp_bytes(0, 0x1234, 0);
        corrupt[16] ^= 0xFF;
        std::memcpy(&bios_area[0x100], corrupt.data(), corrupt.size());
        Bytes misaligned = rsdp_bytes(0, 0x5678, 0);
        std::memcpy(&bios_area[0x208], misaligned.data(), misaligned.size());
        memory.add(0xE0000, bios_area);
        REQUIRE(find_rsdp(memory, rsdp, log));
        CHECK(rsdp.phys == 0xF5A40);
        CHECK(rsdp.revision == 2);
        CHECK(rsdp.xsdt_address == 0xC0000);
        CHECK(log.text() == "acpi: RSDP at 0xe0100: bad checksum, ignored\n");
    }
    SECTION("an EBDA pointer into the interrupt vector table is not followed") {
        memory.add(0x40E, {0x10, 0x00});  // 0x100
        Bytes low(0x400, 0);
        Bytes low_rsdp = rsdp_bytes(0, 0x1000, 0);
        std::memcpy(&low[0x100], low_rsdp.data(), low_rsdp.size());
        memory.add(0, low);
        CHECK_FALSE(find_rsdp(memory, rsdp, log));
    }
    SECTION("nothing readable (a UEFI machine)") {
        CHECK_FALSE(find_rsdp(memory, rsdp, log));
        CHECK(log.text() == "acpi: no RSDP in the EBDA or the BIOS area\n");
    }
}

// ---- Root table and table validation ----

TEST_CASE("acpi: the XSDT is preferred over the RSDT", "[acpi]") {
    Firmware fw;
    u64 madt_one = fw.place(qemu_madt(1));
    u64 madt_four = fw.place(qemu_madt(4));
    u64 rsdt = fw.root("RSDT", {madt_one});
    u64 xsdt = fw.root("XSDT", {madt_four});
    auto r = parse(fw.memory, rsdp_v2(rsdt, xsdt));
    REQUIRE(r->ok);
    CHECK(r->log.empty());
    CHECK(r->platform->uses_xsdt);
    CHECK(r->platform->root_table_address == xsdt);
    CHECK(r->platform->madt.cpus.count == 4);
    REQUIRE(r->platform->tables.count == 2);
    CHECK(std::string(r->platform->tables[0].signature) == "XSDT");
}

TEST_CASE("acpi: a bad XSDT falls back to the RSDT", "[acpi]") {
    Firmware fw;
    u64 madt_one = fw.place(qemu_madt(1));
    u64 rsdt = fw.root("RSDT", {madt_one});
    Bytes xsdt_table = TableBuilder("XSDT").qword(madt_one).finish();
    SECTION("bad checksum") {
        xsdt_table[9] ^= 1;
        u64 xsdt = fw.place(xsdt_table);
        auto r = parse(fw.memory, rsdp_v2(rsdt, xsdt));
        REQUIRE(r->ok);
        CHECK_FALSE(r->platform->uses_xsdt);
        CHECK(r->platform->root_table_address == rsdt);
        CHECK(r->platform->madt.cpus.count == 1);
        CHECK(r->log.contains("XSDT at"));
        CHECK(r->log.contains("bad checksum, table skipped"));
        CHECK(r->log.contains("falling back to the RSDT"));
        REQUIRE(listed(*r->platform, "XSDT") != nullptr);
        CHECK(listed(*r->platform, "XSDT")->status == TableStatus::BadChecksum);
    }
    SECTION("wrong signature") {
        xsdt_table[0] = 'Y';
        refinish(xsdt_table);
        auto r = parse(fw.memory, rsdp_v2(rsdt, fw.place(xsdt_table)));
        REQUIRE(r->ok);
        CHECK_FALSE(r->platform->uses_xsdt);
        CHECK(r->log.contains("expected the XSDT signature"));
    }
    SECTION("unreadable") {
        auto r = parse(fw.memory, rsdp_v2(rsdt, 0xDEAD0000));
        REQUIRE(r->ok);
        CHECK_FALSE(r->platform->uses_xsdt);
        CHECK(r->log.contains("acpi: table at 0xdead0000: header unreadable, table skipped"));
        CHECK(std::string(r->platform->tables[0].signature) == "????");
    }
    SECTION("revision 0 RSDP ignores an XSDT address") {
        u64 xsdt = fw.place(xsdt_table);
        Rsdp rsdp = rsdp_v2(rsdt, xsdt);
        rsdp.revision = 0;
        auto r = parse(fw.memory, rsdp);
        REQUIRE(r->ok);
        CHECK_FALSE(r->platform->uses_xsdt);
        CHECK(r->log.empty());
    }
}

TEST_CASE("acpi: no usable root table", "[acpi]") {
    Firmware fw;
    Bytes rsdt = TableBuilder("RSDT").finish();
    rsdt[9] ^= 1;
    auto r = parse(fw.memory, rsdp_v1(fw.place(rsdt)));
    CHECK_FALSE(r->ok);
    CHECK(r->log.contains("no usable root table"));
    auto zero = parse(fw.memory, rsdp_v1(0));
    CHECK_FALSE(zero->ok);
    CHECK(zero->log.contains("the RSDT address is 0"));
}

TEST_CASE("acpi: a table with a bad checksum is skipped, the others are used", "[acpi]") {
    Firmware fw;
    Bytes hpet = TableBuilder("HPET")
                     .dword(0x8086A201)
                     .gas(0, 64, 0, 0, 0xFED00000)
                     .byte(0)
                     .word(0x80)
                     .byte(0)
                     .finish();
    hpet[40] ^= 0x10;
    u64 hpet_at = fw.place(hpet);
    u64 madt_at = fw.place(qemu_madt(2));
    auto r = parse(fw.memory, rsdp_v2(0, fw.root("XSDT", {hpet_at, madt_at})));
    REQUIRE(r->ok);
    CHECK_FALSE(r->platform->hpet.present);
    CHECK(r->platform->madt.cpus.count == 2);
    char expected[96];
    std::snprintf(expected, sizeof(expected), "acpi: HPET at %#llx: bad checksum, table skipped\n",
                  static_cast<unsigned long long>(hpet_at));
    CHECK(r->log.text() == expected);
    const TableInfo* info = listed(*r->platform, "HPET");
    REQUIRE(info != nullptr);
    CHECK_FALSE(info->checksum_ok());
    CHECK(info->phys == hpet_at);
}

TEST_CASE("acpi: truncated and oversized tables are skipped", "[acpi]") {
    Firmware fw;
    u64 madt_at = fw.place(qemu_madt(1));
    Bytes short_table = TableBuilder("HPET").finish();
    put(short_table, 4, 20, 4);  // length < header
    refinish(short_table);
    Bytes huge = TableBuilder("SSDT").finish();
    put(huge, 4, 2 * 1024 * 1024, 4);
    refinish(huge);
    Bytes cut = qemu_madt(4);
    cut.resize(60);  // the length field still says the full size: runs into unreadable memory
    u64 short_at = fw.place(short_table);
    u64 huge_at = fw.place(huge);
    u64 cut_at = fw.place(cut);
    u64 xsdt = fw.root("XSDT", {short_at, huge_at, cut_at, madt_at});
    auto r = parse(fw.memory, rsdp_v2(0, xsdt));
    REQUIRE(r->ok);
    CHECK(r->log.lines() == 3);
    CHECK(r->log.contains("length 20 outside 36..1048576, table skipped"));
    CHECK(r->log.contains("length 2097152 outside 36..1048576, table skipped"));
    CHECK(r->log.contains("cannot read its"));
    REQUIRE(r->platform->tables.count == 5);
    CHECK(r->platform->tables[1].status == TableStatus::BadLength);
    CHECK(r->platform->tables[2].status == TableStatus::BadLength);
    CHECK(r->platform->tables[3].status == TableStatus::Unreadable);
    // The truncated MADT came first but was not usable; the good one is decoded.
    CHECK(r->platform->madt.present);
    CHECK(r->platform->madt.cpus.count == 1);
}

TEST_CASE("acpi: a table whose length wraps the address space is unreadable", "[acpi]") {
    Firmware fw;
    Bytes table = TableBuilder("SSDT").zeros(28).finish();  // 64 bytes
    put(table, 4, 0x100, 4);
    refinish(table);
    u64 top = ~u64{0} - 63;
    fw.memory.add(top, table);
    auto r = parse(fw.memory, rsdp_v2(0, fw.root("XSDT", {top})));
    REQUIRE(r->ok);
    CHECK(r->platform->tables[1].status == TableStatus::Unreadable);
    CHECK(r->log.contains("cannot read its 256 bytes"));
}

TEST_CASE("acpi: root table entries: null entries and trailing bytes", "[acpi]") {
    Firmware fw;
    u64 madt_at = fw.place(qemu_madt(1));
    Bytes rsdt =
        TableBuilder("RSDT").dword(0).dword(static_cast<u32>(madt_at)).word(0xFFFF).finish();
    auto r = parse(fw.memory, rsdp_v1(fw.place(rsdt)));
    REQUIRE(r->ok);
    CHECK(r->log.contains("entry 0 is null, ignored"));
    CHECK(r->log.contains("2 bytes after the last entry, ignored"));
    CHECK(r->platform->madt.cpus.count == 1);
    CHECK(r->platform->tables.count == 2);
}

TEST_CASE("acpi: the first usable table of a kind wins", "[acpi]") {
    Firmware fw;
    u64 first = fw.place(qemu_madt(2));
    u64 second = fw.place(qemu_madt(4));
    auto r = parse(fw.memory, rsdp_v2(0, fw.root("XSDT", {first, second})));
    REQUIRE(r->ok);
    CHECK(r->platform->madt.cpus.count == 2);
    char expected[128];
    std::snprintf(expected, sizeof(expected),
                  "acpi: APIC at %#llx: duplicate, the one at %#llx is in use; table ignored\n",
                  static_cast<unsigned long long>(second), static_cast<unsigned long long>(first));
    CHECK(r->log.text() == expected);
    CHECK(r->platform->tables.count == 3);  // both are listed
}

TEST_CASE("acpi: the table list is bounded", "[acpi]") {
    Firmware fw;
    std::vector<u64> entries;
    for (int i = 0; i < 70; ++i) entries.push_back(fw.place(TableBuilder("SSDT").finish()));
    auto r = parse(fw.memory, rsdp_v2(0, fw.root("XSDT", entries)));
    REQUIRE(r->ok);
    CHECK(r->platform->tables.count == kMaxTables);
    CHECK(r->platform->tables.dropped == 71 - kMaxTables);
    CHECK(r->log.text() == "acpi: 7 tables beyond the 64 the table list holds were not listed\n");
}

TEST_CASE("acpi: the table list prints one line per table", "[acpi]") {
    Firmware fw;
    u64 madt_at = fw.place(qemu_madt(1));
    auto r = parse(fw.memory, rsdp_v1(fw.root("RSDT", {madt_at})));
    REQUIRE(r->ok);
    LogSink out;
    print_tables(*r->platform, out);
    CHECK(out.text() ==
          "acpi: RSDT 0x000000007ffe1200      40 (v1 BOCHS  BXPC    ) ok\n"
          "acpi: APIC 0x000000007ffe1000     120 (v1 BOCHS  BXPC    ) ok\n");
}

// ---- MADT ----

TEST_CASE("acpi: MADT like QEMU's", "[acpi]") {
    auto r = parse_one(qemu_madt(4));
    REQUIRE(r->ok);
    CHECK(r->log.empty());
    const Madt& madt = r->platform->madt;
    REQUIRE(madt.present);
    CHECK(madt.local_apic_address == 0xFEE00000);
    CHECK(madt.pcat_compat);
    REQUIRE(madt.cpus.count == 4);
    CHECK(madt.enabled_cpus == 4);
    CHECK(madt.unusable_cpus == 0);
    for (u32 i = 0; i < 4; ++i) {
        CHECK(madt.cpus[i].apic_id == i);
        CHECK(madt.cpus[i].acpi_uid == i);
        CHECK(madt.cpus[i].enabled);
    }
    REQUIRE(madt.io_apics.count == 1);
    CHECK(madt.io_apics[0].id == 0);
    CHECK(madt.io_apics[0].address == 0xFEC00000);
    CHECK(madt.io_apics[0].gsi_base == 0);
    REQUIRE(madt.overrides.count == 5);
    CHECK(madt.overrides[0].source == 0);
    CHECK(madt.overrides[0].gsi == 2);
    CHECK(madt.overrides[0].polarity == Polarity::BusDefault);
    CHECK(madt.overrides[0].trigger == Trigger::BusDefault);
    CHECK(madt.overrides[2].source == 9);
    CHECK(madt.overrides[2].gsi == 9);
    CHECK(madt.overrides[2].polarity == Polarity::ActiveHigh);
    CHECK(madt.overrides[2].trigger == Trigger::Level);
    REQUIRE(madt.local_nmis.count == 1);
    CHECK(madt.local_nmis[0].acpi_uid == kAllProcessors);
    CHECK(madt.local_nmis[0].lint == 1);
    CHECK_FALSE(madt.walk_stopped);
}

TEST_CASE("acpi: MADT with x2APIC, NMI and address override entries", "[acpi]") {
    TableBuilder t = madt(0xFEE00000, 0);
    lapic(t, 0, 0, 1);
    lapic(t, 1, 1, 1);
    x2apic(t, 1, 1, 1);    // the same processor again, as some firmware lists it
    x2apic(t, 300, 7, 1);  // only reachable in x2APIC mode
    lapic_address_override(t, 0xFEE0000000);
    nmi_source(t, 0xF, 16);  // active low, level
    lapic_nmi(t, 1, 0x5, 0);
    x2apic_nmi(t, 0xFFFFFFFF, 0, 1);
    x2apic_nmi(t, 7, 0, 1);
    auto r = parse_one(t.finish());
    REQUIRE(r->ok);
    const Madt& madt = r->platform->madt;
    CHECK_FALSE(madt.pcat_compat);
    CHECK(madt.local_apic_address == 0xFEE0000000);
    REQUIRE(madt.cpus.count == 3);
    CHECK(madt.cpus[2].apic_id == 300);
    CHECK(madt.cpus[2].acpi_uid == 7);
    CHECK(r->log.lines() == 1);
    CHECK(r->log.contains("APIC id 1 described again at offset 60; entry ignored"));
    REQUIRE(madt.nmi_sources.count == 1);
    CHECK(madt.nmi_sources[0].gsi == 16);
    CHECK(madt.nmi_sources[0].polarity == Polarity::ActiveLow);
    CHECK(madt.nmi_sources[0].trigger == Trigger::Level);
    REQUIRE(madt.local_nmis.count == 3);
    CHECK(madt.local_nmis[0].acpi_uid == 1);
    CHECK(madt.local_nmis[0].polarity == Polarity::ActiveHigh);
    CHECK(madt.local_nmis[0].trigger == Trigger::Edge);
    CHECK(madt.local_nmis[0].lint == 0);
    CHECK(madt.local_nmis[1].acpi_uid == kAllProcessors);
    CHECK(madt.local_nmis[2].acpi_uid == 7);
}

TEST_CASE("acpi: MADT processors: disabled, online capable, invalid", "[acpi]") {
    TableBuilder t = madt();
    lapic(t, 0, 0, 1);     // enabled
    lapic(t, 1, 1, 0);     // neither: unusable
    lapic(t, 2, 2, 2);     // online capable: hot-pluggable
    x2apic(t, 3, 3, 0);    // unusable
    lapic(t, 4, 0xFF, 1);  // the broadcast id cannot name a processor
    x2apic(t, 0xFFFFFFFF, 5, 2);
    lapic(t, 6, 0xFF, 0);  // unusable anyway: not worth a word
    auto r = parse_one(t.finish());
    REQUIRE(r->ok);
    const Madt& madt = r->platform->madt;
    REQUIRE(madt.cpus.count == 2);
    CHECK(madt.enabled_cpus == 1);
    CHECK(madt.unusable_cpus == 3);
    CHECK(madt.cpus[1].apic_id == 2);
    CHECK_FALSE(madt.cpus[1].enabled);
    CHECK(r->log.lines() == 2);
    CHECK(r->log.contains(
        "processor uid 4 at offset 84 has the broadcast APIC id 0xff; entry ignored"));
    CHECK(r->log.contains("broadcast APIC id 0xffffffff"));
}

TEST_CASE("acpi: MADT entry walk stops at a malformed entry", "[acpi]") {
    TableBuilder t = madt();
    lapic(t, 0, 0, 1);
    SECTION("zero length") {
        t.byte(0).byte(0).zeros(6);
        lapic(t, 1, 1, 1);
        auto r = parse_one(t.finish());
        REQUIRE(r->ok);
        CHECK(r->platform->madt.cpus.count == 1);
        CHECK(r->platform->madt.walk_stopped);
        CHECK(r->log.contains("entry type 0 at offset 52 has length 0; entry walk stopped"));
    }
    SECTION("length 1") {
        t.byte(1).byte(1);
        auto r = parse_one(t.finish());
        CHECK(r->platform->madt.walk_stopped);
        CHECK(r->log.contains("has length 1; entry walk stopped"));
    }
    SECTION("past the end") {
        t.byte(1).byte(12).byte(0).byte(0).dword(0xFEC00000);  // says 12 bytes, 8 remain
        auto r = parse_one(t.finish());
        REQUIRE(r->ok);
        CHECK(r->platform->madt.cpus.count == 1);
        CHECK(r->platform->madt.io_apics.count == 0);
        CHECK(r->platform->madt.walk_stopped);
        CHECK(r->log.contains(
            "entry type 1 at offset 52 (length 12) runs past the end of the table"));
    }
    SECTION("a stray byte at the end") {
        t.byte(0);
        auto r = parse_one(t.finish());
        CHECK(r->platform->madt.cpus.count == 1);
        CHECK_FALSE(r->platform->madt.walk_stopped);
        CHECK(r->log.contains("1 byte(s) after the last entry, ignored"));
    }
}

TEST_CASE("acpi: MADT entries too short for their type are skipped, longer ones accepted",
          "[acpi]") {
    TableBuilder t = madt();
    t.byte(1).byte(8).byte(0).byte(0).dword(0xFEC00000);  // an I/O APIC needs 12 bytes
    t.byte(0).byte(10).byte(0).byte(0).dword(1).word(0);  // a LAPIC grown by 2 bytes
    t.byte(0x7F).byte(3).byte(0);                         // an unknown type: skipped quietly
    lapic(t, 1, 1, 1);
    auto r = parse_one(t.finish());
    REQUIRE(r->ok);
    CHECK(r->platform->madt.io_apics.count == 0);
    CHECK(r->platform->madt.cpus.count == 2);
    CHECK(r->log.text().find("I/O APIC entry at offset 44 has length 8, needs 12; entry ignored") !=
          std::string::npos);
    CHECK(r->log.lines() == 1);
}

TEST_CASE("acpi: MADT reserved INTI flags and a second address override are reported", "[acpi]") {
    TableBuilder t = madt();
    iso(t, 9, 9, 0x2);  // reserved polarity
    lapic_address_override(t, 0x1000);
    lapic_address_override(t, 0x2000);
    auto r = parse_one(t.finish());
    REQUIRE(r->ok);
    CHECK(r->platform->madt.overrides[0].polarity == Polarity::Reserved);
    CHECK(r->platform->madt.local_apic_address == 0x1000);
    CHECK(r->log.contains("reserved INTI flags 0x2"));
    CHECK(r->log.contains("second local APIC address override at offset 66 ignored"));
}

TEST_CASE("acpi: MADT lists are bounded and truncation is reported", "[acpi]") {
    TableBuilder t = madt();
    for (u32 i = 0; i < 300; ++i) x2apic(t, i, i, 1);
    for (u8 i = 0; i < 20; ++i) ioapic(t, i, 0xFEC00000 + i * 0x1000u, i * 24u);
    auto r = parse_one(t.finish());
    REQUIRE(r->ok);
    const Madt& madt = r->platform->madt;
    CHECK(madt.cpus.count == kMaxCpus);
    CHECK(madt.cpus.dropped == 300 - kMaxCpus);
    CHECK(madt.enabled_cpus == kMaxCpus);
    CHECK(madt.io_apics.count == kMaxIoApics);
    CHECK(r->log.contains("44 processors beyond the 256 supported, ignored"));
    CHECK(r->log.contains("4 I/O APICs beyond the 16 supported, ignored"));
}

TEST_CASE("acpi: a MADT shorter than its fixed part is skipped", "[acpi]") {
    Bytes t = TableBuilder("APIC").dword(0xFEE00000).finish();
    auto r = parse_one(t);
    REQUIRE(r->ok);
    CHECK_FALSE(r->platform->madt.present);
    CHECK(r->log.contains("length 40 too short for a MADT (44), table skipped"));
}

// ---- FADT ----

TEST_CASE("acpi: FADT revision 1 (ACPI 1.0, 116 bytes)", "[acpi]") {
    auto r = parse_one(qemu_fadt(1, 116, 1u << 8 /* TMR_VAL_EXT */ | 1u << 10 /* RESET_REG_SUP */));
    REQUIRE(r->ok);
    const Fadt& fadt = r->platform->fadt;
    REQUIRE(fadt.present);
    CHECK(fadt.revision == 1);
    CHECK(fadt.length == 116);
    CHECK(fadt.sci_interrupt == 9);
    CHECK(fadt.smi_command_port == 0xB2);
    CHECK(fadt.pm1a_event.space == AddressSpace::SystemIo);
    CHECK(fadt.pm1a_event.address == 0x600);
    CHECK(fadt.pm1a_event.bit_width == 32);
    CHECK_FALSE(fadt.pm1b_event.present());
    CHECK(fadt.pm1a_control.address == 0x604);
    CHECK(fadt.pm1a_control.bit_width == 16);
    CHECK_FALSE(fadt.pm1b_control.present());
    CHECK(fadt.pm_timer.address == 0x608);
    CHECK(fadt.pm_timer_bits() == 32);
    CHECK(fadt.century == 0x32);
    CHECK(fadt.dsdt_address == 0x7FFE0040);
    CHECK(fadt.facs_address == 0x7FFE0000);
    // No boot architecture flags before revision 3: a PC/AT is assumed.
    CHECK(fadt.has_8042());
    CHECK(fadt.legacy_devices());
    CHECK_FALSE(fadt.vga_absent());
    // RESET_REG_SUP claims a register the table is too short to hold.
    CHECK_FALSE(fadt.reset_supported());
    CHECK(r->log.text().find("RESET_REG_SUP set but the table ends before RESET_REG") !=
          std::string::npos);
    CHECK(r->log.lines() == 1);
}

TEST_CASE("acpi: FADT revision 6 prefers the X_ fields", "[acpi]") {
    using namespace fadt_at;
    Bytes table = qemu_fadt(6, 276, 1u << 10);
    put(table, kBootArch, 0x0004 /* VGA not present */ | 0x0020 /* no CMOS RTC */, 2);
    put_gas(table, kResetReg, 1, 8, 0xCF9);
    put(table, kResetValue, 0x06, 1);
    put(table, kXFirmwareCtrl, 0x17FFE0000, 8);
    put(table, kXDsdt, 0x17FFE0040, 8);
    put_gas(table, kXPm1aEvt, 1, 32, 0x600);
    put_gas(table, kXPm1aCnt, 1, 0, 0x604);     // width left 0: the legacy length supplies it
    put_gas(table, kXPmTmr, 0, 32, 0xFED00F0);  // differs from PM_TMR_BLK: reported
    refinish(table);
    auto r = parse_one(table);
    REQUIRE(r->ok);
    const Fadt& fadt = r->platform->fadt;
    REQUIRE(fadt.present);
    CHECK(fadt.revision == 6);
    CHECK(fadt.pm1a_event.address == 0x600);
    CHECK(fadt.pm1a_control.bit_width == 16);
    CHECK(fadt.pm_timer.space == AddressSpace::SystemMemory);
    CHECK(fadt.pm_timer.address == 0xFED00F0);
    CHECK(fadt.pm_timer_bits() == 24);
    CHECK(fadt.dsdt_address == 0x17FFE0040);
    CHECK(fadt.facs_address == 0x17FFE0000);
    REQUIRE(fadt.reset_supported());
    CHECK(fadt.reset_register.space == AddressSpace::SystemIo);
    CHECK(fadt.reset_register.address == 0xCF9);
    CHECK(fadt.reset_value == 0x06);
    CHECK_FALSE(fadt.has_8042());
    CHECK_FALSE(fadt.legacy_devices());
    CHECK(fadt.vga_absent());
    CHECK(fadt.cmos_rtc_absent());
    CHECK_FALSE(fadt.hardware_reduced());
    CHECK(r->log.lines() == 1);
    CHECK(
        r->log.contains("PM_TMR_BLK 0x608 and X_PM_TMR_BLK 0xfed00f0 differ, using X_PM_TMR_BLK"));
}

TEST_CASE("acpi: FADT of a hardware-reduced platform has no fixed hardware", "[acpi]") {
    Bytes table = qemu_fadt(6, 276, 1u << 20);
    auto r = parse_one(table);
    REQUIRE(r->ok);
    const Fadt& fadt = r->platform->fadt;
    CHECK(fadt.hardware_reduced());
    CHECK(fadt.sci_interrupt == 0);
    CHECK_FALSE(fadt.pm1a_event.present());
    CHECK_FALSE(fadt.pm_timer.present());
    CHECK(fadt.dsdt_address == 0x7FFE0040);  // X_DSDT is 0: the 32-bit field holds
}

TEST_CASE("acpi: FADT reset register must be 8 bits in a valid space", "[acpi]") {
    using namespace fadt_at;
    Bytes table = qemu_fadt(3, 244, 1u << 10);
    SECTION("16 bits wide") { put_gas(table, kResetReg, 1, 16, 0xCF9); }
    SECTION("embedded controller space") { put_gas(table, kResetReg, 3, 8, 0xCF9); }
    SECTION("address 0") { put_gas(table, kResetReg, 1, 8, 0); }
    refinish(table);
    auto r = parse_one(table);
    REQUIRE(r->platform->fadt.present);
    CHECK_FALSE(r->platform->fadt.reset_supported());
    CHECK(r->log.contains("unusable RESET_REG"));
}

TEST_CASE("acpi: FADT X_ fields cut by the table length are not used", "[acpi]") {
    using namespace fadt_at;
    Bytes table = qemu_fadt(3, 244, 0);
    put_gas(table, kXPmTmr, 1, 32, 0x1608);
    table.resize(kXPmTmr + 8);  // X_PM_TMR_BLK cut in the middle of its address
    put(table, 4, table.size(), 4);
    refinish(table);
    auto r = parse_one(table);
    REQUIRE(r->platform->fadt.present);
    CHECK(r->platform->fadt.pm_timer.address == 0x608);
    CHECK(r->log.empty());
}

TEST_CASE("acpi: a FADT shorter than ACPI 1.0's is skipped", "[acpi]") {
    Bytes table = qemu_fadt(1, 116, 0);
    table.resize(100);
    put(table, 4, 100, 4);
    refinish(table);
    auto r = parse_one(table);
    CHECK_FALSE(r->platform->fadt.present);
    CHECK(r->log.contains("length 100 too short for a FADT (116), table skipped"));
}

// ---- HPET, MCFG, DMAR, IVRS ----

Bytes hpet_table(u8 space, u64 address) {
    return TableBuilder("HPET")
        .dword(0x8086A201)
        .gas(space, 64, 0, 0, address)
        .byte(0)
        .word(0x80)
        .byte(0)
        .finish();
}

TEST_CASE("acpi: HPET like QEMU's", "[acpi]") {
    auto r = parse_one(hpet_table(0, 0xFED00000));
    REQUIRE(r->ok);
    CHECK(r->log.empty());
    const Hpet& hpet = r->platform->hpet;
    REQUIRE(hpet.present);
    CHECK(hpet.base_address == 0xFED00000);
    CHECK(hpet.number == 0);
    CHECK(hpet.minimum_tick == 0x80);
    CHECK(hpet.hardware_revision() == 1);
    CHECK(hpet.comparator_count() == 3);
    CHECK(hpet.counter_64bit());
    CHECK(hpet.legacy_replacement_capable());
    CHECK(hpet.pci_vendor_id() == 0x8086);
}

TEST_CASE("acpi: an HPET outside system memory is skipped and a later one used", "[acpi]") {
    Firmware fw;
    u64 io_hpet = fw.place(hpet_table(1, 0xFED00000));
    u64 good = fw.place(hpet_table(0, 0xFED01000));
    Bytes short_hpet = TableBuilder("HPET").dword(0x8086A201).finish();
    u64 too_short = fw.place(short_hpet);
    auto r = parse(fw.memory, rsdp_v2(0, fw.root("XSDT", {io_hpet, too_short, good})));
    REQUIRE(r->ok);
    CHECK(r->platform->hpet.present);
    CHECK(r->platform->hpet.base_address == 0xFED01000);
    CHECK(r->log.contains("base address 0xfed00000 in address space 1 is not system memory"));
    CHECK(r->log.contains("length 40 too short for an HPET table (56), table skipped"));
}

TEST_CASE("acpi: MCFG allocations", "[acpi]") {
    TableBuilder t("MCFG");
    t.zeros(8);
    t.qword(0xB0000000).word(0).byte(0).byte(0xFF).dword(0);
    t.qword(0xC0000000).word(1).byte(0x10).byte(0x0F).dword(0);  // start > end
    t.qword(0).word(2).byte(0).byte(0).dword(0);                 // no base
    t.qword(0xD0000000).word(3).byte(0x80).byte(0x80).dword(0);
    t.zeros(4);
    auto r = parse_one(t.finish());
    REQUIRE(r->ok);
    const Mcfg& mcfg = r->platform->mcfg;
    REQUIRE(mcfg.present);
    REQUIRE(mcfg.segments.count == 2);
    CHECK(mcfg.segments[0].base_address == 0xB0000000);
    CHECK(mcfg.segments[0].start_bus == 0);
    CHECK(mcfg.segments[0].end_bus == 0xFF);
    CHECK(mcfg.segments[1].segment_group == 3);
    CHECK(mcfg.segments[1].start_bus == 0x80);
    CHECK(r->log.lines() == 3);
    CHECK(r->log.contains(
        "allocation 1 (segment 1, buses 16..15, base 0xc0000000) is malformed, ignored"));
    CHECK(r->log.contains("allocation 2 "));
    CHECK(r->log.contains("4 bytes after the last allocation, ignored"));
}

TEST_CASE("acpi: DMAR and IVRS are recorded, not decoded", "[acpi]") {
    Firmware fw;
    Bytes dmar = TableBuilder("DMAR").byte(38).byte(1).zeros(10).finish();
    Bytes ivrs = TableBuilder("IVRS", 2).dword(0x203041).zeros(8).zeros(24).finish();
    u64 dmar_at = fw.place(dmar);
    u64 ivrs_at = fw.place(ivrs);
    Bytes bad_ivrs = ivrs;
    bad_ivrs[50] ^= 1;
    u64 bad_ivrs_at = fw.place(bad_ivrs);
    auto r = parse(fw.memory, rsdp_v2(0, fw.root("XSDT", {bad_ivrs_at, dmar_at, ivrs_at})));
    REQUIRE(r->ok);
    CHECK(r->platform->dmar.present());
    CHECK(r->platform->dmar.phys == dmar_at);
    CHECK(r->platform->dmar.length == dmar.size());
    CHECK(r->platform->ivrs.phys == ivrs_at);
    CHECK(r->platform->ivrs.length == ivrs.size());
    CHECK(r->log.lines() == 1);  // the corrupt IVRS
}

// ---- Robustness ----

// Every byte of a QEMU-like table set, set to values that stress lengths, counts and flags,
// with the checksum fixed over the length the table then declares (when it fits) so that the
// decoders see it: no crash, no read out of bounds (ASan), and the lists within capacity.
TEST_CASE("acpi: single-byte mutations of every table never break the parser", "[acpi]") {
    const std::vector<Bytes> originals = {
        qemu_madt(4),
        qemu_fadt(6, 276, 1u << 10),
        hpet_table(0, 0xFED00000),
        TableBuilder("MCFG")
            .zeros(8)
            .qword(0xB0000000)
            .word(0)
            .byte(0)
            .byte(0xFF)
            .dword(0)
            .finish(),
    };
    for (const Bytes& original : originals) {
        for (usize offset = 0; offset < original.size(); ++offset) {
            if (offset == 9) continue;  // the checksum itself
            for (u8 value : {0x00, 0x01, 0x24, 0x7F, 0x80, 0xFF}) {
                Bytes table = original;
                table[offset] = value;
                usize declared = table[4] | table[5] << 8 | table[6] << 16 | u32{table[7]} << 24;
                fix_checksum(table, 9,
                             declared >= 10 ? std::min(declared, table.size()) : table.size());
                auto r = parse_one(table);
                REQUIRE(r->ok);
                const Platform& p = *r->platform;
                REQUIRE(p.madt.cpus.count <= kMaxCpus);
                REQUIRE(p.madt.enabled_cpus <= p.madt.cpus.count);
                REQUIRE(p.mcfg.segments.count <= kMaxMcfgSegments);
            }
        }
    }
}
