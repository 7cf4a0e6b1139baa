// The guest-side entry (lib/include/lamina/abi/hypercall.h), run on the host: the test's own
// hypercall page holds, in each slot, the slot's `mov eax, number` and a jump to a routine that
// records the registers where the hypervisor would find them, clobbers the argument registers as
// the ABI allows, and returns a chosen result.
#include <catch2/catch.hpp>

#include <lamina/abi/hypercall.h>
#include <lamina/types.h>

#include <sys/mman.h>

#include <cstring>
#include <vector>

LAMINA_HYPERCALL_PAGE_DEFINE();

extern "C" {
// RAX, RDI, RSI, RDX, R10, R8 as the "hypervisor" saw them.
uint64_t entry_test_registers[6];
int64_t entry_test_result;
void entry_test_capture();
}

asm(R"(
    .pushsection .text.entry_test_capture, "ax", @progbits
entry_test_capture:
    movq %rax, entry_test_registers(%rip)
    movq %rdi, entry_test_registers+8(%rip)
    movq %rsi, entry_test_registers+16(%rip)
    movq %rdx, entry_test_registers+24(%rip)
    movq %r10, entry_test_registers+32(%rip)
    movq %r8, entry_test_registers+40(%rip)
    movabsq $0x5a5a5a5a5a5a5a5a, %rdi
    movq %rdi, %rsi
    movq %rdi, %rdx
    movq %rdi, %r10
    movq %rdi, %r8
    movq entry_test_result(%rip), %rax
    ret
    .popsection
)");

namespace {

using lamina::u8;
using lamina::usize;
using lamina::u64;

// Writes `mov eax, number; jmp entry_test_capture` into every slot of the page.
void install_test_page() {
    static bool installed = false;
    if (installed) return;
    REQUIRE(mprotect(lamina_hypercall_page, LAMINA_HYPERCALL_PAGE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC) == 0);
    for (uint32_t number = 0; number < LAMINA_HYPERCALL_SLOTS; ++number) {
        u8* slot = lamina_hypercall_page + number * LAMINA_HYPERCALL_SLOT_SIZE;
        slot[0] = 0xb8;
        std::memcpy(slot + 1, &number, 4);
        slot[5] = 0xe9;
        const int64_t displacement = reinterpret_cast<int64_t>(&entry_test_capture) -
                                     reinterpret_cast<int64_t>(slot + 10);
        REQUIRE(displacement == static_cast<int32_t>(displacement));
        const int32_t rel32 = static_cast<int32_t>(displacement);
        std::memcpy(slot + 6, &rel32, 4);
    }
    installed = true;
}

std::vector<u64> seen(usize argc) {
    return std::vector<u64>(entry_test_registers + 1, entry_test_registers + 1 + argc);
}

}  // namespace

TEST_CASE("guest entry: the number goes in RAX, the arguments in RDI RSI RDX R10 R8", "[hypercall]") {
    install_test_page();
    entry_test_result = -LAMINA_EFAULT;
    CHECK(lamina_hypercall5(0x7f, 11, 22, 33, 44, 55) == -LAMINA_EFAULT);
    CHECK(entry_test_registers[0] == 0x7f);
    CHECK(seen(5) == std::vector<u64>{11, 22, 33, 44, 55});

    entry_test_result = 3;
    CHECK(lamina_hc_domain_map_frames(1, 0x100, 16, 0x9000) == 3);
    CHECK(entry_test_registers[0] == LAMINA_HYPERCALL_domain_map_frames);
    CHECK(seen(4) == std::vector<u64>{1, 0x100, 16, 0x9000});

    entry_test_result = static_cast<int64_t>(LAMINA_ABI_VERSION);
    CHECK(lamina_hc_version() == LAMINA_ABI_VERSION);
    CHECK(entry_test_registers[0] == LAMINA_HYPERCALL_version);
}

TEST_CASE("guest entry: every typed wrapper calls its own slot with its arguments", "[hypercall]") {
    install_test_page();
#define TEST_ARGS_0()
#define TEST_ARGS_1(a) 101
#define TEST_ARGS_2(a, b) 101, 102
#define TEST_ARGS_3(a, b, c) 101, 102, 103
#define TEST_ARGS_4(a, b, c, d) 101, 102, 103, 104
#define TEST_ARGS_5(a, b, c, d, e) 101, 102, 103, 104, 105
#define LAMINA_HYPERCALL(number, name, who, argc, arg_list, summary)                          \
    {                                                                                         \
        INFO(#name);                                                                          \
        entry_test_result = 1000 + (number);                                                  \
        std::memset(entry_test_registers, 0, sizeof(entry_test_registers));                  \
        CHECK(lamina_hc_##name(LAMINA_HC_CAT(TEST_ARGS_, argc) arg_list) == 1000 + (number)); \
        CHECK(entry_test_registers[0] == (number));                                           \
        for (usize i = 0; i < (argc); ++i) CHECK(entry_test_registers[1 + i] == 101 + i);     \
    }
#include <lamina/abi/hypercalls.def>
}

TEST_CASE("guest entry: values the caller keeps survive a call that clobbers the argument registers",
          "[hypercall]") {
    install_test_page();
    entry_test_result = 0;
    // Each argument is used again after the call: the wrapper must not assume RDI..R8 kept them.
    volatile u64 inputs[5] = {1, 2, 3, 4, 5};
    u64 a = inputs[0], b = inputs[1], c = inputs[2], d = inputs[3], e = inputs[4];
    u64 sum = 0;
    for (int round = 0; round < 3; ++round) {
        CHECK(lamina_hypercall5(0x40, a, b, c, d, e) == 0);
        sum += a + b + c + d + e;
    }
    CHECK(sum == 45);
    CHECK(seen(5) == std::vector<u64>{1, 2, 3, 4, 5});
}
