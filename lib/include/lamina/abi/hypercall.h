/* Lamina hypercall ABI: the guest's side of the entry.
 *
 *   LAMINA_HYPERCALL_PAGE_DEFINE();              at file scope, once in the guest
 *   if (lamina_detect() < 0) ...                 not Lamina, or another ABI major
 *   lamina_hypercall_page_install(page_gpa);     the guest-physical address of lamina_hypercall_page
 *   int64_t r = lamina_hc_console_write(buf_gpa, length);
 *
 * A call is a near CALL into the page's slot for its number: the slot loads the number into EAX
 * and executes VMCALL or VMMCALL, whichever the CPU has. The arguments go in RDI, RSI, RDX, R10,
 * R8; the result comes back in RAX (a negative LAMINA_E* on failure). The call may change RDI,
 * RSI, RDX, R10 and R8 (a preempted call resumes with them rewritten); every other register is
 * kept. Only code at CPL 0 in 64-bit mode may call (-EPERM, -ENOSYS otherwise). */
#ifndef LAMINA_ABI_HYPERCALL_H
#define LAMINA_ABI_HYPERCALL_H

#include <lamina/abi/hypercalls.h>

#ifdef __cplusplus
extern "C" {
#endif
/* The page the hypervisor fills; the guest defines it with LAMINA_HYPERCALL_PAGE_DEFINE. */
extern uint8_t lamina_hypercall_page[LAMINA_HYPERCALL_PAGE_SIZE];
#ifdef __cplusplus
}
#endif

/* Defines lamina_hypercall_page in the guest's text (executable; the hypervisor writes it through
 * the guest-physical address, not the guest's mappings), filled with INT3 until it is installed,
 * so that a call made too early traps at once. */
#define LAMINA_HYPERCALL_PAGE_DEFINE()                                        \
    __asm__(".pushsection .text.lamina_hypercall_page, \"ax\", @progbits\n" \
            ".balign 4096\n"                                                  \
            ".globl lamina_hypercall_page\n"                                  \
            "lamina_hypercall_page:\n"                                        \
            ".fill 4096, 1, 0xcc\n"                                           \
            ".popsection")

static inline void lamina_cpuid(uint32_t leaf, uint32_t *eax, uint32_t *ebx, uint32_t *ecx, uint32_t *edx) {
    __asm__ __volatile__("cpuid" : "=a"(*eax), "=b"(*ebx), "=c"(*ecx), "=d"(*edx) : "a"(leaf), "c"(0u));
}

/* LAMINA_ABI_VERSION of the hypervisor when it is Lamina with the ABI major this guest was built
 * for; -LAMINA_ENOSYS when it is not Lamina, -LAMINA_ERANGE when the major differs. */
static inline int64_t lamina_detect(void) {
    uint32_t eax, ebx, ecx, edx;
    lamina_cpuid(1, &eax, &ebx, &ecx, &edx);
    if (!(ecx & (1u << 31))) return -LAMINA_ENOSYS; /* no hypervisor: leaf 0x40000000 is not ours */
    lamina_cpuid(LAMINA_CPUID_LEAF_SIGNATURE, &eax, &ebx, &ecx, &edx);
    if (ebx != LAMINA_CPUID_SIGNATURE_EBX || ecx != LAMINA_CPUID_SIGNATURE_ECX ||
        edx != LAMINA_CPUID_SIGNATURE_EDX || eax < LAMINA_CPUID_LEAF_HYPERCALL) {
        return -LAMINA_ENOSYS;
    }
    lamina_cpuid(LAMINA_CPUID_LEAF_VERSION, &eax, &ebx, &ecx, &edx);
    if (LAMINA_ABI_VERSION_MAJOR_OF(eax) != LAMINA_ABI_VERSION_MAJOR) return -LAMINA_ERANGE;
    return eax;
}

/* Asks the hypervisor to fill the page at `page_gpa` (lamina_hypercall_page's guest-physical
 * address) through the MSR CPUID names. */
static inline void lamina_hypercall_page_install(uint64_t page_gpa) {
    uint32_t pages, msr, ecx, edx;
    lamina_cpuid(LAMINA_CPUID_LEAF_HYPERCALL, &pages, &msr, &ecx, &edx);
    __asm__ __volatile__("wrmsr" : : "c"(msr), "a"((uint32_t)page_gpa), "d"((uint32_t)(page_gpa >> 32)) : "memory");
}

/* The raw entry: calls the slot of `number`. It first steps over the 128-byte red zone below
 * RSP, which the CALL would overwrite in code compiled with one. */
#define LAMINA_HC_SLOT_(number) (lamina_hypercall_page + (uint64_t)(number) * LAMINA_HYPERCALL_SLOT_SIZE)
#define LAMINA_HC_CALL_ "lea -128(%%rsp), %%rsp\n\tcall *%[slot]\n\tlea 128(%%rsp), %%rsp"

static inline int64_t lamina_hypercall0(uint64_t number) {
    int64_t result;
    __asm__ __volatile__(LAMINA_HC_CALL_
                         : "=a"(result)
                         : [slot] "r"(LAMINA_HC_SLOT_(number))
                         : "rdi", "rsi", "rdx", "r10", "r8", "memory", "cc");
    return result;
}

static inline int64_t lamina_hypercall1(uint64_t number, uint64_t a0) {
    register uint64_t rdi __asm__("rdi") = a0;
    int64_t result;
    __asm__ __volatile__(LAMINA_HC_CALL_
                         : "=a"(result), "+r"(rdi)
                         : [slot] "r"(LAMINA_HC_SLOT_(number))
                         : "rsi", "rdx", "r10", "r8", "memory", "cc");
    return result;
}

static inline int64_t lamina_hypercall2(uint64_t number, uint64_t a0, uint64_t a1) {
    register uint64_t rdi __asm__("rdi") = a0;
    register uint64_t rsi __asm__("rsi") = a1;
    int64_t result;
    __asm__ __volatile__(LAMINA_HC_CALL_
                         : "=a"(result), "+r"(rdi), "+r"(rsi)
                         : [slot] "r"(LAMINA_HC_SLOT_(number))
                         : "rdx", "r10", "r8", "memory", "cc");
    return result;
}

static inline int64_t lamina_hypercall3(uint64_t number, uint64_t a0, uint64_t a1, uint64_t a2) {
    register uint64_t rdi __asm__("rdi") = a0;
    register uint64_t rsi __asm__("rsi") = a1;
    register uint64_t rdx __asm__("rdx") = a2;
    int64_t result;
    __asm__ __volatile__(LAMINA_HC_CALL_
                         : "=a"(result), "+r"(rdi), "+r"(rsi), "+r"(rdx)
                         : [slot] "r"(LAMINA_HC_SLOT_(number))
                         : "r10", "r8", "memory", "cc");
    return result;
}

static inline int64_t lamina_hypercall4(uint64_t number, uint64_t a0, uint64_t a1, uint64_t a2,
                                        uint64_t a3) {
    register uint64_t rdi __asm__("rdi") = a0;
    register uint64_t rsi __asm__("rsi") = a1;
    register uint64_t rdx __asm__("rdx") = a2;
    register uint64_t r10 __asm__("r10") = a3;
    int64_t result;
    __asm__ __volatile__(LAMINA_HC_CALL_
                         : "=a"(result), "+r"(rdi), "+r"(rsi), "+r"(rdx), "+r"(r10)
                         : [slot] "r"(LAMINA_HC_SLOT_(number))
                         : "r8", "memory", "cc");
    return result;
}

static inline int64_t lamina_hypercall5(uint64_t number, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
                                        uint64_t a4) {
    register uint64_t rdi __asm__("rdi") = a0;
    register uint64_t rsi __asm__("rsi") = a1;
    register uint64_t rdx __asm__("rdx") = a2;
    register uint64_t r10 __asm__("r10") = a3;
    register uint64_t r8 __asm__("r8") = a4;
    int64_t result;
    __asm__ __volatile__(LAMINA_HC_CALL_
                         : "=a"(result), "+r"(rdi), "+r"(rsi), "+r"(rdx), "+r"(r10), "+r"(r8)
                         : [slot] "r"(LAMINA_HC_SLOT_(number))
                         : "memory", "cc");
    return result;
}

/* The typed wrappers, one per table entry: lamina_hc_<name>(its arguments), each uint64_t so that
 * a test can pass any value (the hypervisor checks them). */
#define LAMINA_HC_C_PARAMS_0() void
#define LAMINA_HC_C_PARAMS_1(a) uint64_t LAMINA_HC_ARG_NAME a
#define LAMINA_HC_C_PARAMS_2(a, b) LAMINA_HC_C_PARAMS_1(a), uint64_t LAMINA_HC_ARG_NAME b
#define LAMINA_HC_C_PARAMS_3(a, b, c) LAMINA_HC_C_PARAMS_2(a, b), uint64_t LAMINA_HC_ARG_NAME c
#define LAMINA_HC_C_PARAMS_4(a, b, c, d) LAMINA_HC_C_PARAMS_3(a, b, c), uint64_t LAMINA_HC_ARG_NAME d
#define LAMINA_HC_C_PARAMS_5(a, b, c, d, e) LAMINA_HC_C_PARAMS_4(a, b, c, d), uint64_t LAMINA_HC_ARG_NAME e
#define LAMINA_HC_C_ARG_(index, arg) , LAMINA_HC_ARG_NAME arg
#define LAMINA_HYPERCALL(number, name, caller, argc, args, summary)                                  \
    static inline int64_t lamina_hc_##name(LAMINA_HC_CAT(LAMINA_HC_C_PARAMS_, argc) args) {          \
        return LAMINA_HC_CAT(lamina_hypercall, argc)(number LAMINA_HC_FOR_EACH_ARG(LAMINA_HC_C_ARG_, \
                                                                                   argc, args));     \
    }
#include <lamina/abi/hypercalls.def>

#endif
