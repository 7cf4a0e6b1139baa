/* Lamina hypercall ABI: its version, and how a guest finds Lamina and enters it.
 *
 * Discovery, as Xen does it, so that a guest need not know the CPU vendor: CPUID.1:ECX[31] says a
 * hypervisor is present; the leaves from 0x40000000 (a range no CPU uses, SDM Vol. 2A "CPUID")
 * name it, give the ABI version and the MSR that installs the hypercall page. */
#ifndef LAMINA_ABI_VERSION_H
#define LAMINA_ABI_VERSION_H

#include <lamina/abi/base.h>

/* major.minor. A minor version only adds (hypercalls, feature bits, reasons in counters that
 * have room for them); a major version may change anything. A guest checks the major. */
#define LAMINA_ABI_VERSION_MAJOR 1u
#define LAMINA_ABI_VERSION_MINOR 1u /* 1.1: CPUID 0x40000001 ECX, the domain's id */
/* As CPUID leaf 0x40000001 EAX and the version hypercall report it: major in bits 31:16. */
#define LAMINA_ABI_VERSION ((LAMINA_ABI_VERSION_MAJOR << 16) | LAMINA_ABI_VERSION_MINOR)
#define LAMINA_ABI_VERSION_MAJOR_OF(version) ((uint32_t)(version) >> 16)
#define LAMINA_ABI_VERSION_MINOR_OF(version) ((uint32_t)(version) & 0xffffu)

/* EAX: the highest Lamina leaf; EBX, ECX, EDX: the signature "LaminaLamina", 4 bytes each,
 * the first in bits 7:0. */
#define LAMINA_CPUID_LEAF_SIGNATURE 0x40000000u
#define LAMINA_CPUID_SIGNATURE "LaminaLamina"
#define LAMINA_CPUID_SIGNATURE_EBX 0x696d614cu /* "Lami" */
#define LAMINA_CPUID_SIGNATURE_ECX 0x614c616eu /* "naLa" */
#define LAMINA_CPUID_SIGNATURE_EDX 0x616e696du /* "mina" */

/* EAX: LAMINA_ABI_VERSION; EBX: the LAMINA_CPUID_DOMAIN_* flags; ECX: the domain's id (since
 * 1.1; the control domain's is LAMINA_DOMID_CONTROL); EDX: 0. */
#define LAMINA_CPUID_LEAF_VERSION 0x40000001u
#define LAMINA_CPUID_DOMAIN_CONTROL (1u << 0) /* this domain is the control domain (Dom0) */

/* EAX: how many hypercall pages the guest may install; EBX: the MSR that installs one. */
#define LAMINA_CPUID_LEAF_HYPERCALL 0x40000002u
#define LAMINA_CPUID_LEAF_LAST LAMINA_CPUID_LEAF_HYPERCALL

/* Writing the guest-physical address of a 4 KiB page of the guest's RAM to this MSR (page index
 * in bits 11:0, so 0 for the only page) makes the hypervisor fill that page with the entry code
 * below. Any other value is #GP; the MSR is write-only. */
#define LAMINA_HYPERCALL_PAGE_MSR 0x40000000u
#define LAMINA_HYPERCALL_PAGE_COUNT 1u
#define LAMINA_HYPERCALL_PAGE_SIZE 4096u

/* The page holds one slot per hypercall number (Xen's layout): the slot of number N, at
 * N * LAMINA_HYPERCALL_SLOT_SIZE, is `mov eax, N; vmcall` (Intel) or `vmmcall` (AMD), `ret`.
 * A slot for a number this hypervisor does not implement is `mov rax, -LAMINA_ENOSYS; ret`;
 * the bytes after each slot's code are INT3. A guest calls the slot; it never needs to know
 * the vendor. */
#define LAMINA_HYPERCALL_SLOT_SIZE 32u
#define LAMINA_HYPERCALL_SLOTS (LAMINA_HYPERCALL_PAGE_SIZE / LAMINA_HYPERCALL_SLOT_SIZE)
/* Arguments in RDI, RSI, RDX, R10, R8 (the Linux system call order). */
#define LAMINA_HYPERCALL_MAX_ARGS 5u

/* Feature word 0 (the features hypercall); bits not named here read 0. */
#define LAMINA_FEATURES_WORD0 0u
#define LAMINA_FEATURE_CONTROL_DOMAIN (1u << 0) /* the caller may make control-domain hypercalls */

#endif
