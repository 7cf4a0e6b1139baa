// Another vCPU of the test domain in 64-bit mode (conformance.h, long64_vcpu_context).
#include <tests/conformance/framework/conformance.h>

extern "C" const char long64_vcpu_entry[];

namespace conformance {

lamina_vcpu_context long64_vcpu_context(void (*main)(), void* stack_top) {
    constexpr u64 kCr4Pae = 1 << 5, kCr4Osfxsr = 1 << 9, kCr4Osxmmexcpt = 1 << 10, kEferLme = 1 << 8;
    lamina_vcpu_context c{};
    c.mode = LAMINA_VCPU_MODE_LONG64;
    c.regs.rbx = reinterpret_cast<u64>(main);
    c.regs.rsp = reinterpret_cast<u64>(stack_top);
    c.regs.rip = reinterpret_cast<u64>(long64_vcpu_entry);
    c.regs.rflags = 2;
    asm volatile("mov %%cr0, %0" : "=r"(c.cr0));
    asm volatile("mov %%cr3, %0" : "=r"(c.cr3));
    c.cr4 = kCr4Pae | kCr4Osfxsr | kCr4Osxmmexcpt;  // what the PVH entry turned on
    c.efer = kEferLme;
    return c;
}

}  // namespace conformance
