# The freestanding x86-64 toolchain: clang and lld targeting bare metal. Nothing from the host's
# C library or C++ runtime reaches the image: -nostdlibinc keeps only the compiler's own
# freestanding headers (stdint.h, stddef.h), -nostdlib links only our objects.

find_program(LAMINA_LLD NAMES ld.lld ld.lld-14 REQUIRED)
find_program(LAMINA_NM NAMES llvm-nm llvm-nm-14 REQUIRED)

set(LAMINA_TARGET_TRIPLE x86_64-unknown-none-elf)

set(LAMINA_FREESTANDING_COMPILE_OPTIONS
    --target=${LAMINA_TARGET_TRIPLE}
    -ffreestanding -nostdlibinc
    -fno-exceptions -fno-rtti -fno-threadsafe-statics -fno-use-cxa-atexit
    -fno-pic -fno-pie -mcmodel=kernel
    # The hypervisor uses no FPU/SSE state of its own: guests own it (switched with XSAVE).
    -mno-red-zone -mgeneral-regs-only
    -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer
    -fstack-protector-strong
    -ffunction-sections -fdata-sections
    -g -O2
    -Wall -Wextra -Werror -Wno-unused-parameter
)

set(LAMINA_FREESTANDING_LINK_OPTIONS
    --target=${LAMINA_TARGET_TRIPLE} -fuse-ld=lld -nostdlib -static
    -Wl,--no-pie -Wl,-z,max-page-size=4096 -Wl,--gc-sections -Wl,--build-id=none
)

# Makes an object library whose sources build for the bare-metal image.
function(lamina_freestanding_objects name)
    add_library(${name} OBJECT ${ARGN})
    target_compile_options(${name} PRIVATE ${LAMINA_FREESTANDING_COMPILE_OPTIONS})
    target_compile_definitions(${name} PRIVATE LAMINA_FREESTANDING=1)
    target_include_directories(${name} PRIVATE ${LAMINA_INCLUDE_DIRS})
endfunction()
