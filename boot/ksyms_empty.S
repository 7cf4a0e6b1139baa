/* First link pass: an empty symbol table (see scripts/gen-ksyms.py for the real one). */
    .section .ksyms, "a"
    .balign 8
    .global lamina_ksyms_count
lamina_ksyms_count:
    .quad 0
    .global lamina_ksyms
lamina_ksyms:
    .global lamina_ksyms_names
lamina_ksyms_names:
    .byte 0
