#include <hypervisor/hypercall/hypercall_page.h>

#include <hypervisor/hypercall/dispatcher.h>
#include <lamina/string.h>

namespace lamina::hypercall {
namespace {

constexpr u8 kInt3 = 0xcc;
constexpr u8 kRet = 0xc3;
// SDM Vol. 2B, MOV: B8+rd id writes EAX and zeroes RAX[63:32]; REX.W C7 /0 id sign-extends.
constexpr u8 kMovEaxImm32 = 0xb8;
constexpr u8 kMovRaxSignExtendedImm32[] = {0x48, 0xc7, 0xc0};
constexpr u8 kVmcall[] = {0x0f, 0x01, 0xc1};
constexpr u8 kVmmcall[] = {0x0f, 0x01, 0xd9};

// Writes `bytes` at `at` and returns where the next instruction goes.
template <usize N>
u8* emit(u8* at, const u8 (&bytes)[N]) {
    str::copy_bytes(at, bytes, N);
    return at + N;
}

u8* emit_imm32(u8* at, u32 value) {
    for (usize i = 0; i < 4; ++i) *at++ = static_cast<u8>(value >> (8 * i));
    return at;
}

}  // namespace

void write_hypercall_page(u8 (&page)[kPageSize], bool amd) {
    str::fill_bytes(page, kInt3, kPageSize);
    for (usize number = 0; number < LAMINA_HYPERCALL_SLOTS; ++number) {
        u8* at = page + number * kSlotSize;
        if (find_hypercall(number)) {
            *at++ = kMovEaxImm32;
            at = emit_imm32(at, static_cast<u32>(number));
            at = emit(at, amd ? kVmmcall : kVmcall);
        } else {
            at = emit(at, kMovRaxSignExtendedImm32);
            at = emit_imm32(at, static_cast<u32>(-LAMINA_ENOSYS));
        }
        *at = kRet;
    }
}

}  // namespace lamina::hypercall
