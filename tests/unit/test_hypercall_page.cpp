#include <catch2/catch.hpp>

#include <hypervisor/hypercall/dispatcher.h>
#include <hypervisor/hypercall/hypercall_page.h>

#include <vector>

using namespace lamina;
using namespace lamina::hypercall;

namespace {

std::vector<u8> slot(const u8 (&page)[kPageSize], u64 number) {
    return std::vector<u8>(page + number * kSlotSize, page + (number + 1) * kSlotSize);
}

// The code a slot should hold, then INT3 to the end of the slot.
std::vector<u8> padded(std::vector<u8> code) {
    code.resize(kSlotSize, 0xcc);
    return code;
}

}  // namespace

TEST_CASE("hypercall page: a slot is mov eax, number; vmcall or vmmcall; ret", "[hypercall]") {
    u8 page[kPageSize];

    write_hypercall_page(page, false);
    CHECK(slot(page, LAMINA_HYPERCALL_version) ==
          padded({0xb8, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x01, 0xc1, 0xc3}));
    CHECK(slot(page, LAMINA_HYPERCALL_domain_map_frames) ==
          padded({0xb8, 0x1a, 0x00, 0x00, 0x00, 0x0f, 0x01, 0xc1, 0xc3}));

    write_hypercall_page(page, true);
    CHECK(slot(page, LAMINA_HYPERCALL_version) ==
          padded({0xb8, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x01, 0xd9, 0xc3}));
    CHECK(slot(page, LAMINA_HYPERCALL_domain_exit_stats) ==
          padded({0xb8, 0x72, 0x00, 0x00, 0x00, 0x0f, 0x01, 0xd9, 0xc3}));
}

TEST_CASE("hypercall page: the slot of an unused number answers -ENOSYS without an exit", "[hypercall]") {
    // mov rax, imm32 sign-extended (a 32-bit mov would leave RAX = 0xffffffda, not negative); ret.
    const std::vector<u8> enosys = padded({0x48, 0xc7, 0xc0, 0xda, 0xff, 0xff, 0xff, 0xc3});
    REQUIRE(find_hypercall(0x7f) == nullptr);
    REQUIRE(find_hypercall(0x02) == nullptr);
    for (bool amd : {false, true}) {
        u8 page[kPageSize];
        write_hypercall_page(page, amd);
        CHECK(slot(page, 0x7f) == enosys);
        CHECK(slot(page, 0x02) == enosys);
    }
}

TEST_CASE("hypercall page: every slot, both vendors, whatever the page held", "[hypercall]") {
    for (bool amd : {false, true}) {
        CAPTURE(amd);
        for (u8 junk : {0x00, 0x90, 0xff}) {
            u8 page[kPageSize];
            std::fill(page, page + kPageSize, junk);
            write_hypercall_page(page, amd);
            for (u64 number = 0; number < LAMINA_HYPERCALL_SLOTS; ++number) {
                CAPTURE(number);
                std::vector<u8> expected;
                if (find_hypercall(number)) {
                    expected = {0xb8, static_cast<u8>(number), 0, 0, 0, 0x0f, 0x01, static_cast<u8>(amd ? 0xd9 : 0xc1),
                                0xc3};
                } else {
                    expected = {0x48, 0xc7, 0xc0, 0xda, 0xff, 0xff, 0xff, 0xc3};
                }
                CHECK(slot(page, number) == padded(expected));
            }
        }
    }
    CHECK(LAMINA_HYPERCALL_SLOTS * kSlotSize == kPageSize);
}
