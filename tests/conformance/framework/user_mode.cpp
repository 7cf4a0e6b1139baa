// What user_mode.S needs: a GDT with user segments where SYSRET looks for them and a 32-bit code
// segment, the SYSCALL MSRs,
// and the PVH entry's identity page tables opened to CPL 3 (their U bits; no SMEP or SMAP is on).
#include <tests/conformance/framework/conformance.h>

#include <lamina/interrupt_gate.h>

extern "C" lamina::i64 user_mode_enter(lamina::u64 entry, const lamina::u64* args, lamina::u64 user_stack_top,
                                       lamina::u64 number);
extern "C" lamina::i64 compat_mode_enter(lamina::u64 entry, lamina::u64 number);
extern "C" const char user_mode_return[];

namespace conformance {
namespace {

constexpr u32 kEfer = 0xc0000080;
constexpr u32 kStar = 0xc0000081;
constexpr u32 kLstar = 0xc0000082;
constexpr u32 kSfmask = 0xc0000084;
constexpr u64 kEferSyscall = 1;
constexpr u64 kPresent = 1, kUser = 1 << 2, kLarge = 1 << 7;
constexpr u64 kAddressMask = 0x000ffffffffff000;

// Selectors: SYSCALL loads CS = STAR[47:32] (0x08) and SS = +8; SYSRET to 64-bit code loads
// SS = STAR[63:48] + 8 and CS = STAR[63:48] + 16, RPL 3 (SDM Vol. 2B, SYSRET).
constexpr u64 kKernelCode = 0x08, kUserBase = 0x18;
alignas(16) const u64 gdt[] = {
    0,
    0x00af9a000000ffff,  // 0x08 kernel code, 64-bit (as lib/src/pvh_entry.S has it)
    0x00cf92000000ffff,  // 0x10 kernel data
    0,                   // 0x18 32-bit user code: not used
    0x00cff2000000ffff,  // 0x20 user data, DPL 3
    0x00affa000000ffff,  // 0x28 user code, 64-bit, DPL 3
    0x00cf9a000000ffff,  // 0x30 kernel code, 32-bit (compatibility mode): user_mode.S
};

alignas(16) u8 user_stack[4096];
bool ready = false;

void wrmsr(u32 msr, u64 value) {
    asm volatile("wrmsr" : : "c"(msr), "a"(static_cast<u32>(value)), "d"(static_cast<u32>(value >> 32)));
}
u64 rdmsr(u32 msr) {
    u32 lo, hi;
    asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return (u64{hi} << 32) | lo;
}

// Sets U in every present entry reachable from CR3 down to the 2 MiB pages of the identity map.
void open_page_tables_to_user_mode() {
    u64 cr3;
    asm volatile("mov %%cr3, %0" : "=r"(cr3));
    auto* pml4 = reinterpret_cast<u64*>(cr3 & kAddressMask);
    for (usize i = 0; i < 512; ++i) {
        if (!(pml4[i] & kPresent)) continue;
        pml4[i] |= kUser;
        auto* pdpt = reinterpret_cast<u64*>(pml4[i] & kAddressMask);
        for (usize j = 0; j < 512; ++j) {
            if (!(pdpt[j] & kPresent)) continue;
            pdpt[j] |= kUser;
            if (pdpt[j] & kLarge) continue;
            auto* pd = reinterpret_cast<u64*>(pdpt[j] & kAddressMask);
            for (usize k = 0; k < 512; ++k) {
                if (pd[k] & kPresent) pd[k] |= kUser;
            }
        }
    }
    asm volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
}

void prepare() {
    DescriptorPointer pointer{sizeof(gdt) - 1, reinterpret_cast<u64>(gdt)};
    asm volatile("lgdt %0" : : "m"(pointer) : "memory");
    open_page_tables_to_user_mode();
    wrmsr(kStar, (kUserBase << 48) | (kKernelCode << 32));
    wrmsr(kLstar, reinterpret_cast<u64>(user_mode_return));
    wrmsr(kSfmask, 0x700);  // IF, TF, DF off at SYSCALL
    wrmsr(kEfer, rdmsr(kEfer) | kEferSyscall);
    ready = true;
}

}  // namespace

i64 user_mode_hypercall(u64 number, u64 a0, u64 a1, u64 a2, u64 a3, u64 a4) {
    if (!ready) prepare();
    const u64 args[5] = {a0, a1, a2, a3, a4};
    return user_mode_enter(raw_entry(), args, reinterpret_cast<u64>(user_stack + sizeof(user_stack)), number);
}

i64 compat_mode_hypercall(u64 number) {
    if (!ready) prepare();
    // Back in 64-bit mode the upper half of RAX is undefined (SDM Vol. 1, 3.4.1.1): the answer
    // is its lower half.
    return static_cast<i32>(compat_mode_enter(raw_entry(), number));
}

}  // namespace conformance
