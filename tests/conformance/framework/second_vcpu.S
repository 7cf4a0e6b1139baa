/* Where a vCPU that long64_vcpu_context (conformance.h) describes starts: in 64-bit mode on the
 * starting vCPU's page tables, with RBX the function to run and RSP its stack. It loads the
 * kernel's GDT (pvh_entry.S) before any segment, as a LONG64 context asks, then calls the
 * function, which does not return. */
#include <lamina/long_mode_switch.S.h>

    .section .text
    .code64
    .global long64_vcpu_entry
long64_vcpu_entry:
    lgdt pvh_gdt_pointer
    load_long_mode_data_segments
    call *%rbx
1:  cli
    hlt
    jmp 1b
