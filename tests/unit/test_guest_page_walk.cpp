// The guest page walk over a fake guest memory, checked against SDM Vol. 3A ch. 4: each paging
// mode, the leaf sizes, and every fault with its exact error code.
#include <catch2/catch.hpp>

#include "fake_guest_memory.h"

#include <hypervisor/emulate/guest_page_walk.h>

#include <cstdio>
#include <string>

using namespace lamina;
using namespace lamina::emulate;
using lamina::testing::FakeGuestMemory;

namespace {

constexpr u64 P = 1u << 0, W = 1u << 1, U = 1u << 2, PS = 1u << 7, XD = u64{1} << 63;

constexpr u64 kCr0Pe = 1u << 0, kCr0Wp = 1u << 16, kCr0Pg = 1u << 31;
constexpr u64 kCr4Pse = 1u << 4, kCr4Pae = 1u << 5, kCr4La57 = 1u << 12, kCr4Smep = 1u << 20, kCr4Smap = 1u << 21;
constexpr u64 kEferLme = 1u << 8, kEferLma = 1u << 10, kEferNxe = 1u << 11;

// Error codes, spelled out.
constexpr u32 kP = page_fault::kPresent, kW = page_fault::kWrite, kU = page_fault::kUser,
              kRsvd = page_fault::kReserved, kI = page_fault::kFetch;

constexpr Access kRead{AccessKind::Read, false, false};
constexpr Access kWrite{AccessKind::Write, false, false};
constexpr Access kFetch{AccessKind::Fetch, false, false};
constexpr Access kUserRead{AccessKind::Read, true, false};
constexpr Access kUserWrite{AccessKind::Write, true, false};
constexpr Access kUserFetch{AccessKind::Fetch, true, false};

WalkResult ok(u64 gpa) { return {WalkStatus::Ok, 0, gpa}; }
WalkResult fault(u32 code) { return {WalkStatus::PageFault, code, 0}; }
WalkResult not_ram(u64 gpa) { return {WalkStatus::NotRam, 0, gpa}; }

}  // namespace

namespace Catch {
template <>
struct StringMaker<WalkResult> {
    static std::string convert(const WalkResult& r) {
        static const char* const kNames[] = {"Ok", "PageFault", "NonCanonical", "NotRam"};
        char text[96];
        snprintf(text, sizeof text, "{%s, error %#x, address %#llx}", kNames[static_cast<int>(r.status)],
                 r.error_code, static_cast<unsigned long long>(r.address));
        return text;
    }
};
}  // namespace Catch

namespace {

// 4-level or 5-level tables in fake guest RAM, built entry by entry.
class LongModeTables {
public:
    explicit LongModeTables(bool five_level) : top_shift_(five_level ? 48 : 39) {
        root_ = new_table();
        paging = {kCr0Pe | kCr0Pg | kCr0Wp, root_, kCr4Pae | (five_level ? kCr4La57 : 0),
                  kEferLme | kEferLma | kEferNxe, {40, true}};
    }

    // The entry for `linear` at the level that translates bits shift+8..shift; missing tables
    // above it are made, their entries P | W | U.
    u64 entry_address(u64 linear, u32 shift) {
        u64 table = root_;
        for (u32 level = top_shift_;; level -= 9) {
            const u64 address = table + ((linear >> level) & 511) * 8;
            if (level == shift) return address;
            u64 entry = read(address);
            if (!(entry & P)) {
                entry = new_table() | P | W | U;
                memory.write64(address, entry);
            }
            table = entry & 0x000ffffffffff000;
        }
    }
    u64 entry(u64 linear, u32 shift) { return read(entry_address(linear, shift)); }
    void set(u64 linear, u32 shift, u64 value) { memory.write64(entry_address(linear, shift), value); }
    void change(u64 linear, u32 shift, u64 clear, u64 add) {
        set(linear, shift, (entry(linear, shift) & ~clear) | add);
    }

    WalkResult walk(u64 linear, Access access) { return translate(memory, paging, linear, access); }

    FakeGuestMemory memory;
    PagingState paging;

private:
    u64 new_table() {
        const u64 table = next_table_;
        next_table_ += 4096;
        memory.add_ram(table, 4096);
        return table;
    }
    u64 read(u64 address) {
        u64 value;
        REQUIRE(memory.read(address, &value, sizeof value));
        return value;
    }

    u32 top_shift_;
    u64 root_;
    u64 next_table_ = 0x100000;
};

constexpr u64 kLinear = 0x00007f12'3456789a;

}  // namespace

TEST_CASE("page walk: without paging a linear address is physical, cut to 32 bits") {
    FakeGuestMemory memory;
    for (u64 cr0 : {u64{0}, kCr0Pe}) {
        const PagingState paging{cr0, 0x1000, kCr4Pae, kEferLme, {40, true}};
        CHECK(translate(memory, paging, 0x1234'56789abc, kWrite) == ok(0x56789abc));
        CHECK(translate(memory, paging, 0xfee00020, kUserFetch) == ok(0xfee00020));
    }
    CHECK(memory.reads == 0);
}

TEST_CASE("page walk: 32-bit paging with 4 KiB pages, and 4 MiB pages under CR4.PSE with PSE-36") {
    FakeGuestMemory memory;
    memory.add_ram(0x1000, 0x2000);  // the page directory at 0x1000, a page table at 0x2000
    PagingState paging{kCr0Pe | kCr0Pg | kCr0Wp, 0x1000, 0, kEferNxe, {40, true}};
    const u32 linear = 0x00403abc;   // PDE 1, PTE 3
    memory.write32(0x1000 + 1 * 4, 0x2000 | P | W | U);
    memory.write32(0x2000 + 3 * 4, 0x7000 | P | W | U);
    CHECK(translate(memory, paging, linear, kUserWrite) == ok(0x7abc));
    CHECK(translate(memory, paging, linear, kFetch) == ok(0x7abc));  // no execute protection here
    paging.cr3 = 0x1018;  // PWT and PCD are not address bits
    CHECK(translate(memory, paging, linear, kRead) == ok(0x7abc));
    CHECK(translate(memory, paging, 0xffffffff'00403abc, kRead) == ok(0x7abc));  // 32-bit linear addresses

    memory.write32(0x2000 + 3 * 4, 0x7000 | P | U);
    CHECK(translate(memory, paging, linear, kUserWrite) == fault(kP | kW | kU));
    memory.write32(0x2000 + 3 * 4, 0x7000);
    CHECK(translate(memory, paging, linear, kFetch) == fault(0));  // no I/D without PAE or SMEP
    paging.cr4 = kCr4Smep;
    CHECK(translate(memory, paging, linear, kFetch) == fault(kI));

    SECTION("4 MiB pages") {
        const u32 big = 0x00801234;  // PDE 2
        const u64 pde = 0x0c000000 | PS | P | W;
        memory.write32(0x1000 + 2 * 4, static_cast<u32>(pde));
        paging.cr4 = kCr4Pse;
        CHECK(translate(memory, paging, big, kWrite) == ok(0x0c001234));
        CHECK(translate(memory, paging, big, kUserRead) == fault(kP | kU));
        // PSE-36: PDE bits 20:13 are physical bits 39:32, up to MAXPHYADDR; the rest is reserved
        memory.write32(0x1000 + 2 * 4, static_cast<u32>(pde | (0x5a << 13)));
        CHECK(translate(memory, paging, big, kRead) == ok(0x5a'0c001234));
        paging.features.physical_address_bits = 36;
        CHECK(translate(memory, paging, big, kRead) == fault(kP | kRsvd));
        memory.write32(0x1000 + 2 * 4, static_cast<u32>(pde | (0x0a << 13)));
        CHECK(translate(memory, paging, big, kRead) == ok(0x0a'0c001234));
        paging.features.physical_address_bits = 52;  // PSE-36 stops at 40 bits: bit 21 stays reserved
        memory.write32(0x1000 + 2 * 4, static_cast<u32>(pde | (1u << 21)));
        CHECK(translate(memory, paging, big, kWrite) == fault(kP | kW | kRsvd));
        // Without CR4.PSE, PS is ignored: the entry names a page table (here not in RAM)
        paging.cr4 = 0;
        memory.write32(0x1000 + 2 * 4, static_cast<u32>(pde));
        CHECK(translate(memory, paging, big, kRead) == not_ram(0x0c000000 + 1 * 4));
    }
    SECTION("a page directory or table outside RAM") {
        paging.cr3 = 0x9000;
        CHECK(translate(memory, paging, linear, kRead) == not_ram(0x9000 + 1 * 4));
        paging.cr3 = 0x1000;
        memory.write32(0x1000 + 1 * 4, 0xfee00000 | P | W);
        CHECK(translate(memory, paging, linear, kRead) == not_ram(0xfee00000 + 3 * 4));
    }
}

TEST_CASE("page walk: PAE paging: four PDPTEs without rights, 2 MiB pages, bits 62:M reserved") {
    FakeGuestMemory memory;
    memory.add_ram(0x3000, 0x3000);  // PDPT at 0x3020, page directory at 0x4000, page table at 0x5000
    PagingState paging{kCr0Pe | kCr0Pg | kCr0Wp, 0x3020, kCr4Pae, kEferNxe, {40, true}};
    const u64 linear = 0xc0201abc;      // PDPTE 3, PDE 1, PTE 1
    const u64 pdpte_address = 0x3020 + 3 * 8;
    memory.write64(pdpte_address, 0x4000 | P);  // R/W and U/S do not exist in a PAE PDPTE
    memory.write64(0x4000 + 1 * 8, 0x5000 | P | W | U);
    memory.write64(0x5000 + 1 * 8, 0x9000 | P | W | U);
    CHECK(translate(memory, paging, linear, kUserWrite) == ok(0x9abc));
    CHECK(translate(memory, paging, linear | (u64{1} << 32), kRead) == ok(0x9abc));  // 32-bit linear addresses

    SECTION("PDPTEs") {
        memory.write64(pdpte_address, 0x4000 | P | W);  // bit 1 is reserved
        CHECK(translate(memory, paging, linear, kRead) == fault(kP | kRsvd));
        memory.write64(pdpte_address, 0x4000 | P | XD);  // so is bit 63, NXE or not
        CHECK(translate(memory, paging, linear, kUserRead) == fault(kP | kU | kRsvd));
        memory.write64(pdpte_address, 0x4000);
        CHECK(translate(memory, paging, linear, kWrite) == fault(kW));
        paging.cr3 = 0x8000;
        CHECK(translate(memory, paging, linear, kRead) == not_ram(0x8000 + 3 * 8));
    }
    SECTION("2 MiB pages above 4 GiB") {
        memory.write64(0x4000 + 1 * 8, 0x1'23400000 | PS | P | W);
        CHECK(translate(memory, paging, linear, kWrite) == ok(0x1'23401abc));
        memory.write64(0x4000 + 1 * 8, 0x1'23400000 | PS | P | W | (1u << 13));  // bits 20:13 reserved
        CHECK(translate(memory, paging, linear, kWrite) == fault(kP | kW | kRsvd));
    }
    SECTION("bits 62:MAXPHYADDR are reserved (4-level paging leaves 62:52 to software)") {
        memory.write64(0x5000 + 1 * 8, 0x9000 | P | W | (u64{1} << 62));
        CHECK(translate(memory, paging, linear, kRead) == fault(kP | kRsvd));
        memory.write64(0x5000 + 1 * 8, 0x9000 | P | W | (u64{1} << 40));
        CHECK(translate(memory, paging, linear, kRead) == fault(kP | kRsvd));
        paging.features.physical_address_bits = 41;
        CHECK(translate(memory, paging, linear, kRead) == ok(0x100'00009abc));
    }
    SECTION("XD: reserved without EFER.NXE, execute protection with it") {
        memory.write64(0x5000 + 1 * 8, 0x9000 | P | W | XD);
        CHECK(translate(memory, paging, linear, kRead) == ok(0x9abc));
        CHECK(translate(memory, paging, linear, kFetch) == fault(kP | kI));
        paging.efer = 0;
        CHECK(translate(memory, paging, linear, kRead) == fault(kP | kRsvd));
        CHECK(translate(memory, paging, linear, kFetch) == fault(kP | kRsvd));  // I/D needs NXE (or SMEP)
    }
}

TEST_CASE("page walk: 4-level paging: 4 KiB, 2 MiB and 1 GiB leaves") {
    LongModeTables tables(false);
    tables.set(kLinear, 12, 0xab'cdef0000 | P | W | U);
    CHECK(tables.walk(kLinear, kUserWrite) == ok(0xab'cdef089a));
    tables.paging.cr3 |= 0x123;  // a PCID is not an address
    CHECK(tables.walk(kLinear, kRead) == ok(0xab'cdef089a));

    SECTION("2 MiB") {
        tables.set(kLinear, 21, 0x12'34400000 | PS | P | W | U);
        CHECK(tables.walk(kLinear, kUserRead) == ok(0x12'3456789a));
        tables.change(kLinear, 21, 0, 1u << 20);  // bits 20:13 reserved
        CHECK(tables.walk(kLinear, kUserRead) == fault(kP | kU | kRsvd));
    }
    SECTION("1 GiB, where the CPU has them") {
        tables.set(kLinear, 30, 0x40'00000000 | PS | P | W);
        CHECK(tables.walk(kLinear, kRead) == ok(0x40'3456789a));
        tables.paging.features.pages_1g = false;
        CHECK(tables.walk(kLinear, kRead) == fault(kP | kRsvd));
        tables.paging.features.pages_1g = true;
        tables.change(kLinear, 30, 0, 1u << 13);  // bits 29:13 reserved
        CHECK(tables.walk(kLinear, kRead) == fault(kP | kRsvd));
    }
    SECTION("PS in a PML4E is reserved") {
        tables.change(kLinear, 39, 0, PS);
        CHECK(tables.walk(kLinear, kWrite) == fault(kP | kW | kRsvd));
    }
    SECTION("bits 51:MAXPHYADDR are reserved, 62:52 are ignored") {
        tables.change(kLinear, 12, 0, u64{1} << 45);
        CHECK(tables.walk(kLinear, kRead) == fault(kP | kRsvd));
        tables.paging.features.physical_address_bits = 46;
        CHECK(tables.walk(kLinear, kRead) == ok(0x20ab'cdef089a));
        tables.change(kLinear, 12, u64{1} << 45, u64{0x7ff} << 52);
        CHECK(tables.walk(kLinear, kRead) == ok(0xab'cdef089a));
        tables.change(kLinear, 21, 0, u64{1} << 51);  // in a non-leaf entry too
        tables.paging.features.physical_address_bits = 52;  // there it is an address bit
        CHECK(tables.walk(kLinear, kRead).status == WalkStatus::NotRam);
        tables.paging.features.physical_address_bits = 51;
        CHECK(tables.walk(kLinear, kRead) == fault(kP | kRsvd));
    }
    SECTION("XD is reserved without EFER.NXE") {
        tables.change(kLinear, 30, 0, XD);
        tables.paging.efer &= ~kEferNxe;
        CHECK(tables.walk(kLinear, kUserFetch) == fault(kP | kU | kRsvd));
    }
    SECTION("linear addresses must be canonical") {
        CHECK(tables.walk(0x00008000'00000000, kRead).status == WalkStatus::NonCanonical);
        CHECK(tables.walk(0xfffe0000'00000000, kRead).status == WalkStatus::NonCanonical);
        CHECK(tables.walk(0xffff8000'00000000, kRead) == fault(0));  // canonical, not mapped
    }
}

TEST_CASE("page walk: 5-level paging translates 57-bit canonical addresses") {
    LongModeTables tables(true);
    const u64 linear = 0x00800000'00001234;  // bit 55: canonical only with 5 levels
    tables.set(linear, 12, 0x5000 | P | W);
    CHECK(tables.walk(linear, kWrite) == ok(0x5234));
    CHECK(tables.walk(0x01000000'00000000, kRead).status == WalkStatus::NonCanonical);
    CHECK(tables.walk(0xff000000'00000000, kRead) == fault(0));
    tables.change(linear, 48, 0, PS);  // PS in a PML5E is reserved
    CHECK(tables.walk(linear, kRead) == fault(kP | kRsvd));

    tables.paging.cr4 &= ~kCr4La57;  // the same address is not canonical with 4 levels
    CHECK(tables.walk(linear, kRead).status == WalkStatus::NonCanonical);
}

TEST_CASE("page walk: a not-present entry at any level faults with P clear and the access's bits") {
    for (u32 shift : {39u, 30u, 21u, 12u}) {
        LongModeTables tables(false);
        tables.set(kLinear, 12, 0x5000 | P | W | U);
        tables.change(kLinear, shift, P, 0);
        CAPTURE(shift);
        CHECK(tables.walk(kLinear, kRead) == fault(0));
        CHECK(tables.walk(kLinear, kUserWrite) == fault(kW | kU));
        CHECK(tables.walk(kLinear, kUserFetch) == fault(kU | kI));
        tables.paging.efer &= ~kEferNxe;  // I/D only where execute protection exists
        CHECK(tables.walk(kLinear, kFetch) == fault(0));
        tables.paging.cr4 |= kCr4Smep;
        CHECK(tables.walk(kLinear, kFetch) == fault(kI));
    }
    // A reserved bit above a not-present entry is found first: the walk stops at the first
    LongModeTables tables(false);
    tables.set(kLinear, 12, 0x5000);
    tables.change(kLinear, 21, 0, u64{1} << 48);
    CHECK(tables.walk(kLinear, kRead) == fault(kP | kRsvd));
}

TEST_CASE("page walk: access rights: U/S and R/W over all levels, CR0.WP, SMEP, SMAP with RFLAGS.AC, XD") {
    LongModeTables tables(false);
    const u64 gpa = 0x5000 | (kLinear & 0xfff);
    auto with = [&](u64 pte, u64 pde_clear = 0) {
        tables.set(kLinear, 12, 0x5000 | P | pte);
        tables.set(kLinear, 21, (tables.entry(kLinear, 21) | P | W | U) & ~pde_clear);
    };
    const Access supervisor_read_ac{AccessKind::Read, false, true};
    const Access supervisor_write_ac{AccessKind::Write, false, true};
    const Access supervisor_fetch_ac{AccessKind::Fetch, false, true};

    SECTION("user accesses need U/S at every level, writes R/W at every level") {
        with(W);
        CHECK(tables.walk(kLinear, kUserRead) == fault(kP | kU));
        with(W | U, U);  // the PDE says supervisor
        CHECK(tables.walk(kLinear, kUserRead) == fault(kP | kU));
        with(U);
        CHECK(tables.walk(kLinear, kUserRead) == ok(gpa));
        CHECK(tables.walk(kLinear, kUserWrite) == fault(kP | kW | kU));
        with(W | U, W);  // the PDE says read-only
        CHECK(tables.walk(kLinear, kUserWrite) == fault(kP | kW | kU));
        tables.paging.cr0 &= ~kCr0Wp;  // WP is about supervisor writes only
        CHECK(tables.walk(kLinear, kUserWrite) == fault(kP | kW | kU));
        with(W | U);
        CHECK(tables.walk(kLinear, kUserWrite) == ok(gpa));
    }
    SECTION("supervisor writes to read-only pages follow CR0.WP") {
        with(0);
        CHECK(tables.walk(kLinear, kWrite) == fault(kP | kW));
        tables.paging.cr0 &= ~kCr0Wp;
        CHECK(tables.walk(kLinear, kWrite) == ok(gpa));
        with(U);  // a user page too
        CHECK(tables.walk(kLinear, kWrite) == ok(gpa));
    }
    SECTION("SMAP: supervisor data accesses to user pages need RFLAGS.AC") {
        with(W | U);
        CHECK(tables.walk(kLinear, kRead) == ok(gpa));
        CHECK(tables.walk(kLinear, kWrite) == ok(gpa));
        tables.paging.cr4 |= kCr4Smap;
        CHECK(tables.walk(kLinear, kRead) == fault(kP));
        CHECK(tables.walk(kLinear, kWrite) == fault(kP | kW));
        CHECK(tables.walk(kLinear, supervisor_read_ac) == ok(gpa));
        CHECK(tables.walk(kLinear, supervisor_write_ac) == ok(gpa));
        CHECK(tables.walk(kLinear, kFetch) == ok(gpa));  // fetches are SMEP's business
        CHECK(tables.walk(kLinear, kUserRead) == ok(gpa));
        with(U);  // AC does not override R/W under WP
        CHECK(tables.walk(kLinear, supervisor_write_ac) == fault(kP | kW));
        with(W);  // supervisor pages are not affected
        CHECK(tables.walk(kLinear, kWrite) == ok(gpa));
    }
    SECTION("SMEP: no supervisor fetches from user pages, whatever RFLAGS.AC") {
        with(U);
        CHECK(tables.walk(kLinear, kFetch) == ok(gpa));
        tables.paging.cr4 |= kCr4Smep;
        CHECK(tables.walk(kLinear, kFetch) == fault(kP | kI));
        CHECK(tables.walk(kLinear, supervisor_fetch_ac) == fault(kP | kI));
        CHECK(tables.walk(kLinear, kUserFetch) == ok(gpa));
        CHECK(tables.walk(kLinear, kRead) == ok(gpa));
        with(0);
        CHECK(tables.walk(kLinear, kFetch) == ok(gpa));
        CHECK(tables.walk(kLinear, kUserFetch) == fault(kP | kU | kI));
    }
    SECTION("XD forbids fetches from any level, and nothing else") {
        with(W | U | XD);
        CHECK(tables.walk(kLinear, kFetch) == fault(kP | kI));
        CHECK(tables.walk(kLinear, kUserFetch) == fault(kP | kU | kI));
        CHECK(tables.walk(kLinear, kUserRead) == ok(gpa));
        CHECK(tables.walk(kLinear, kUserWrite) == ok(gpa));
        with(W | U);
        tables.change(kLinear, 39, 0, XD);
        CHECK(tables.walk(kLinear, kFetch) == fault(kP | kI));
    }
}

TEST_CASE("page walk: a walk that reaches memory other than RAM says where") {
    LongModeTables tables(false);
    tables.set(kLinear, 12, 0xfed00000 | P | W);  // the page itself may be a device: that is fine
    CHECK(tables.walk(kLinear, kWrite) == ok(0xfed0089a));
    tables.set(kLinear, 21, 0xfee00000 | P | W);  // a page table in the APIC page
    CHECK(tables.walk(kLinear, kRead) == not_ram(0xfee00000 + ((kLinear >> 12) & 511) * 8));
    tables.paging.cr3 = 0x7000'0000;
    CHECK(tables.walk(kLinear, kRead) == not_ram(0x7000'0000 + ((kLinear >> 39) & 511) * 8));
}
