// A CPU-bound guest for the scheduler's figures: it says hello, brings up every other vCPU it
// has (vcpu_up until the hypervisor says there is no such vCPU), and then each of them computes
// forever without a single exit of its own, so that only the scheduler's timer takes the CPU.
#include <lamina/abi/hypercall.h>
#include <tests/guests/guest.h>

LAMINA_HYPERCALL_PAGE_DEFINE();

// Where the other vCPUs start: 32-bit protected mode, paging off (the PVH entry's mode), so a
// loop of one instruction is all they need.
asm(".pushsection .text\n"
    ".code32\n"
    ".globl spin32\n"
    "spin32: sti\n"  // as guest_main does, for Bochs
    "1: jmp 1b\n"
    ".code64\n"
    ".popsection");
extern "C" char spin32[];

using namespace guest;

extern "C" void guest_main(u64) {
    Console console;
    format(console, "spinner: spinning\n");
    u32 vcpus = 1;
    if (lamina_detect() >= 0) {
        lamina_hypercall_page_install(reinterpret_cast<u64>(lamina_hypercall_page));
        lamina_vcpu_context context{};
        context.mode = LAMINA_VCPU_MODE_PROTECTED32;
        context.regs.rip = reinterpret_cast<u64>(spin32);
        context.regs.rflags = 2;
        while (lamina_hc_vcpu_up(vcpus, reinterpret_cast<u64>(&context)) == 0) ++vcpus;
    }
    format(console, "spinner: {} vCPUs spinning\n", vcpus);
    // Interrupts on, though none ever comes (the hypervisor injects only what a guest asks for):
    // Bochs 2.7 holds host interrupts back while the guest's RFLAGS.IF is 0, VMX and SVM alike,
    // so a guest spinning with IF=0 would keep its CPU there for good. The SDM says otherwise
    // (Vol. 3C 26.2: with external-interrupt exiting they cause VM exits whatever RFLAGS.IF),
    // as does the APM with V_INTR_MASKING (15.21.1); QEMU and hardware take the exit.
    asm volatile("sti");
    volatile u64 work = 0;
    for (;;) work = work * 6364136223846793005u + 1442695040888963407u;
}
