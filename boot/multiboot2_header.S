/* Multiboot2 header (Multiboot2 spec 3.1). It must lie in the first 32 KiB of the image and be
 * 8-byte aligned; the .multiboot2 section is placed first by boot/linker.ld. */

#define MB2_MAGIC 0xe85250d6
#define MB2_ARCH_I386 0
#define MB2_TAG_INFO_REQUEST 1
#define MB2_TAG_OPTIONAL 1

    .section .multiboot2, "a"
    .balign 8
mb2_header:
    .long MB2_MAGIC
    .long MB2_ARCH_I386
    .long mb2_header_end - mb2_header
    .long -(MB2_MAGIC + MB2_ARCH_I386 + (mb2_header_end - mb2_header))

    /* Ask for what the hypervisor parses; optional, so a loader lacking one still boots us. */
    .balign 8
mb2_info_request:
    .short MB2_TAG_INFO_REQUEST
    .short MB2_TAG_OPTIONAL
    .long mb2_info_request_end - mb2_info_request
    .long 1   /* command line */
    .long 3   /* modules */
    .long 6   /* memory map */
    .long 14  /* ACPI old RSDP */
    .long 15  /* ACPI new RSDP */
    .long 12  /* EFI64 system table */
    .long 17  /* EFI memory map */
mb2_info_request_end:

    .balign 8
    .short 0  /* end tag */
    .short 0
    .long 8
mb2_header_end:
