# Lamina's small guest kernels (the test guests of tests/guests, the conformance test kernels of
# tests/conformance): PVH kernels linked low with the default code model, built separately from
# the hypervisor's objects, sharing lib/ for formatting.

set(LAMINA_GUEST_COMPILE_OPTIONS
    --target=${LAMINA_TARGET_TRIPLE} -ffreestanding -nostdlibinc -fno-exceptions -fno-rtti
    -fno-pic -fno-pie -mno-red-zone -mgeneral-regs-only -fno-stack-protector -O2 -g
    -Wall -Wextra -Werror -Wno-unused-parameter)
set(LAMINA_GUEST_LIB_SOURCES
    ${CMAKE_SOURCE_DIR}/lib/src/format.cpp
    ${CMAKE_SOURCE_DIR}/lib/src/string.cpp
    ${CMAKE_SOURCE_DIR}/lib/src/libc_shim.cpp)
set(LAMINA_GUEST_LINKER_SCRIPT ${CMAKE_SOURCE_DIR}/tests/guests/guest.ld)

# lamina_guest_kernel(target OUTPUT_NAME name OUTPUT_DIRECTORY dir [BASE address]
#                     [ASSEMBLY_ONLY] SOURCES sources...)
# A C++ kernel is entered through lib/src/pvh_entry.S (long mode) at guest_main; an
# ASSEMBLY_ONLY one brings its own entry. It links at BASE (default 1 MiB, guest-physical).
function(lamina_guest_kernel target)
    cmake_parse_arguments(G "ASSEMBLY_ONLY" "OUTPUT_NAME;OUTPUT_DIRECTORY;BASE" "SOURCES" ${ARGN})
    if(G_ASSEMBLY_ONLY)
        set(sources ${G_SOURCES})
    else()
        set(sources ${CMAKE_SOURCE_DIR}/lib/src/pvh_entry.S ${G_SOURCES} ${LAMINA_GUEST_LIB_SOURCES})
    endif()
    if(NOT G_BASE)
        set(G_BASE 0x100000)
    endif()
    add_executable(${target} ${sources})
    target_compile_options(${target} PRIVATE ${LAMINA_GUEST_COMPILE_OPTIONS})
    target_compile_definitions(${target} PRIVATE LAMINA_FREESTANDING=1 PVH_MAIN=guest_main)
    target_include_directories(${target} PRIVATE ${LAMINA_INCLUDE_DIRS})
    target_link_options(${target} PRIVATE --target=${LAMINA_TARGET_TRIPLE} -fuse-ld=lld -nostdlib
        -static -Wl,--no-pie -Wl,-z,max-page-size=4096 -Wl,--build-id=none
        -Wl,--defsym=guest_kernel_base=${G_BASE} -Wl,-T,${LAMINA_GUEST_LINKER_SCRIPT})
    set_target_properties(${target} PROPERTIES OUTPUT_NAME ${G_OUTPUT_NAME} SUFFIX ".elf"
        RUNTIME_OUTPUT_DIRECTORY ${G_OUTPUT_DIRECTORY} LINK_DEPENDS ${LAMINA_GUEST_LINKER_SCRIPT})
endfunction()
