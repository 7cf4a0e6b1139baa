# Emulator scenarios: the real image boots in QEMU (AMD SVM+NPT under TCG, -cpu max) and in Bochs
# (corei7_skylake_x: Intel VMX+EPT; ryzen: AMD SVM+NPT); scripts/emu_run.py follows the serial
# log and decides (see README.md, "Result protocol"). The tests need the ISOs that
# `cmake --build` makes; they are "Not Run" when those are missing.
#
# Labels: scenario, the emulator (qemu, bochs), the vendor (svm, vmx), the firmware (bios, uefi),
# the mode (selftest, ready). E.g. `ctest -L bochs`, `ctest -L vmx`, `ctest -LE bochs`.
# Logs: build/logs/<test name>.log (+ .emu.log, .cmd, and for Bochs .bochsrc, .bochs.log).
#
# Timeouts are about 10x what a run takes on a 2-core host (QEMU BIOS ~1.5 s, QEMU UEFI ~9 s,
# Bochs 1 CPU ~6 s, Bochs 2 CPUs ~15 s, the GRUB menu's 3 s included in the ready runs): raise
# them when the self-tests grow, and keep the sum of them under ~40 minutes of CPU.

find_program(LAMINA_PYTHON3 NAMES python3 REQUIRED)
set(LAMINA_RUNNER ${CMAKE_SOURCE_DIR}/scripts/emu_run.py)
set(LAMINA_TEST_ISO ${CMAKE_BINARY_DIR}/lamina-test.iso)
set(LAMINA_PRODUCT_ISO ${CMAKE_BINARY_DIR}/lamina.iso)

# lamina_scenario(<name> EMU qemu|bochs VENDOR svm|vmx SMP n MEM MiB FIRMWARE bios|uefi
#                 MODE selftest|ready|panic (ISO path | CMDLINE "hypervisor options") TIMEOUT s
#                 [PROCESSORS n] [ARGS runner args...])
# With CMDLINE the runner makes (and caches) an ISO with that hypervisor command line.
function(lamina_scenario name)
    cmake_parse_arguments(S "" "EMU;VENDOR;SMP;MEM;FIRMWARE;MODE;ISO;CMDLINE;TIMEOUT;PROCESSORS" "ARGS" ${ARGN})
    if(DEFINED S_CMDLINE)
        set(image --cmdline ${S_CMDLINE})
        set(S_ISO ${CMAKE_BINARY_DIR}/lamina.elf)
    else()
        set(image --iso ${S_ISO})
    endif()
    add_test(NAME ${name}
        COMMAND ${LAMINA_PYTHON3} ${LAMINA_RUNNER}
            --name ${name} --emu ${S_EMU} --cpu-vendor ${S_VENDOR} --smp ${S_SMP} --mem ${S_MEM}
            --firmware ${S_FIRMWARE} --mode ${S_MODE} ${image} --timeout ${S_TIMEOUT}
            --build-dir ${CMAKE_BINARY_DIR} --log ${CMAKE_BINARY_DIR}/logs/${name}.log ${S_ARGS})
    # CTest's own limit is a backstop: the runner times out first and says why.
    math(EXPR backstop "${S_TIMEOUT} + 60")
    if(NOT S_PROCESSORS)
        set(S_PROCESSORS 1)
    endif()
    set_tests_properties(${name} PROPERTIES
        LABELS "scenario;${S_EMU};${S_VENDOR};${S_FIRMWARE};${S_MODE}"
        TIMEOUT ${backstop}
        PROCESSORS ${S_PROCESSORS}
        REQUIRED_FILES ${S_ISO})
endfunction()

# QEMU, self-test: the full smp x memory cross on BIOS, and UEFI (OVMF) covering every value of
# each axis. 4 vCPUs run as 4 host threads (MTTCG): such a test takes both cores of a CI machine.
foreach(smp 1 4)
    if(smp EQUAL 4)
        set(procs 2)
    else()
        set(procs 1)
    endif()
    foreach(mem 128 2048 5120)
        lamina_scenario(qemu.svm.bios.smp${smp}.mem${mem}
            EMU qemu VENDOR svm SMP ${smp} MEM ${mem} FIRMWARE bios MODE selftest
            ISO ${LAMINA_TEST_ISO} TIMEOUT 60 PROCESSORS ${procs})
    endforeach()
endforeach()
lamina_scenario(qemu.svm.uefi.smp1.mem5120
    EMU qemu VENDOR svm SMP 1 MEM 5120 FIRMWARE uefi MODE selftest
    ISO ${LAMINA_TEST_ISO} TIMEOUT 90)
lamina_scenario(qemu.svm.uefi.smp4.mem128
    EMU qemu VENDOR svm SMP 4 MEM 128 FIRMWARE uefi MODE selftest
    ISO ${LAMINA_TEST_ISO} TIMEOUT 90 PROCESSORS 2)
lamina_scenario(qemu.svm.uefi.smp4.mem2048
    EMU qemu VENDOR svm SMP 4 MEM 2048 FIRMWARE uefi MODE selftest
    ISO ${LAMINA_TEST_ISO} TIMEOUT 90 PROCESSORS 2)

# Bochs, self-test: Intel VMX+EPT with 1 and 2 CPUs, AMD SVM+NPT with 1. Bochs is one host
# thread whatever its CPU count; two Bochs at once each find a free RFB port.
lamina_scenario(bochs.vmx.bios.smp1.mem512
    EMU bochs VENDOR vmx SMP 1 MEM 512 FIRMWARE bios MODE selftest
    ISO ${LAMINA_TEST_ISO} TIMEOUT 180)
lamina_scenario(bochs.vmx.bios.smp2.mem512
    EMU bochs VENDOR vmx SMP 2 MEM 512 FIRMWARE bios MODE selftest
    ISO ${LAMINA_TEST_ISO} TIMEOUT 240)
lamina_scenario(bochs.svm.bios.smp1.mem512
    EMU bochs VENDOR svm SMP 1 MEM 512 FIRMWARE bios MODE selftest
    ISO ${LAMINA_TEST_ISO} TIMEOUT 180)

# The product ISO boots its default (normal) entry, through the GRUB menu, to READY.
lamina_scenario(qemu.svm.bios.smp2.mem512.ready
    EMU qemu VENDOR svm SMP 2 MEM 512 FIRMWARE bios MODE ready
    ISO ${LAMINA_PRODUCT_ISO} TIMEOUT 60)
lamina_scenario(bochs.vmx.bios.smp1.mem512.ready
    EMU bochs VENDOR vmx SMP 1 MEM 512 FIRMWARE bios MODE ready
    ISO ${LAMINA_PRODUCT_ISO} TIMEOUT 180)

# Deliberate crashes after READY: each must end in a complete diagnosis (the panic line, a
# symbolized backtrace) and the emulator's failure exit. The stack overflow must be caught by the
# guard page and reported by the double-fault handler on its own IST stack.
foreach(crash panic page-fault stack-overflow)
    if(crash STREQUAL "panic")
        set(expected "crash=panic asked for")
    elseif(crash STREQUAL "page-fault")
        set(expected "page fault at 0xdead0000: not present on write")
    else()
        set(expected "double fault")
    endif()
    lamina_scenario(qemu.svm.bios.smp2.crash-${crash}
        EMU qemu VENDOR svm SMP 2 MEM 256 FIRMWARE bios MODE panic CMDLINE "crash=${crash}"
        TIMEOUT 60 ARGS --expect-panic ${expected})
    lamina_scenario(bochs.vmx.bios.smp1.crash-${crash}
        EMU bochs VENDOR vmx SMP 1 MEM 256 FIRMWARE bios MODE panic CMDLINE "crash=${crash}"
        TIMEOUT 180 ARGS --expect-panic ${expected})
endforeach()

# Command-line options the READY line must reflect: smp= caps the CPUs brought up, apic=xapic
# forces xAPIC mode on a CPU that has x2APIC.
lamina_scenario(qemu.svm.bios.smp4.opt-smp2
    EMU qemu VENDOR svm SMP 4 MEM 256 FIRMWARE bios MODE selftest CMDLINE "smp=2"
    TIMEOUT 60 PROCESSORS 2 ARGS --expect-cpus 2/4)
lamina_scenario(bochs.vmx.bios.smp1.opt-xapic
    EMU bochs VENDOR vmx SMP 1 MEM 256 FIRMWARE bios MODE selftest CMDLINE "apic=xapic loglvl=debug"
    TIMEOUT 180)

# Without an HPET the TSC is calibrated against the PIT.
lamina_scenario(qemu.svm.bios.smp2.no-hpet
    EMU qemu VENDOR svm SMP 2 MEM 256 FIRMWARE bios MODE selftest ISO ${LAMINA_TEST_ISO}
    TIMEOUT 60 ARGS --machine q35,hpet=off)

# The runner's own verdict logic, on canned logs (no emulator).
add_test(NAME harness.verdicts COMMAND ${LAMINA_PYTHON3} ${LAMINA_RUNNER} --self-test)
set_tests_properties(harness.verdicts PROPERTIES LABELS "harness")

# Dom0's shell, driven through the serial console as an operator would (tests/dom0_shell.py):
# basics (the prompt, commands and their errors, poweroff ending the machine with success),
# domains (images, configs, consoles, top, end actions), three (three guests at once, a fault
# reported while the others run, pause/unpause/destroy, refusals), soak (200 create/destroy
# cycles, free memory back to the same page count), limits (one domain more than the host allows
# is refused; free memory comes back), sched (sched-credit, vcpu-pin, vcpu-list and the
# cpu_weight/cap/cpus config keys, with their refusals).
foreach(scenario basics domains three soak limits sched)
    foreach(target "qemu;svm;90" "bochs;vmx;300")
        list(GET target 0 emu)
        list(GET target 1 vendor)
        list(GET target 2 timeout)
        set(name dom0.${scenario}.${emu}.${vendor})
        add_test(NAME ${name}
            COMMAND ${LAMINA_PYTHON3} ${CMAKE_SOURCE_DIR}/tests/dom0_shell.py --scenario ${scenario}
                --build-dir ${CMAKE_BINARY_DIR} --log ${CMAKE_BINARY_DIR}/logs/${name}.log --timeout ${timeout}
                -- --emu ${emu} --cpu-vendor ${vendor} --smp 1 --mem 512)
        math(EXPR backstop "${timeout} + 120")
        set_tests_properties(${name} PROPERTIES LABELS "scenario;dom0;${emu};${vendor}" TIMEOUT ${backstop}
            REQUIRED_FILES ${CMAKE_BINARY_DIR}/dom0.elf)
    endforeach()
endforeach()

# The credit scheduler's figures, checked against issue 5's tolerances (tests/dom0_shell.py
# check_fairness): on 2 CPUs in QEMU (-icount: deterministic time) and Bochs VMX, and on 4 CPUs
# in QEMU.
foreach(target "fairness;qemu;svm;2;--icount" "fairness;bochs;vmx;2;" "fairness4;qemu;svm;4;--icount")
    list(GET target 0 scenario)
    list(GET target 1 emu)
    list(GET target 2 vendor)
    list(GET target 3 cpus)
    list(GET target 4 clock)
    set(name dom0.${scenario}.${emu}.${vendor})
    add_test(NAME ${name}
        COMMAND ${LAMINA_PYTHON3} ${CMAKE_SOURCE_DIR}/tests/dom0_shell.py --scenario ${scenario}
            --build-dir ${CMAKE_BINARY_DIR} --log ${CMAKE_BINARY_DIR}/logs/${name}.log --timeout 300
            -- --emu ${emu} --cpu-vendor ${vendor} --smp ${cpus} --mem 512 ${clock})
    set_tests_properties(${name} PROPERTIES LABELS "scenario;dom0;sched;${emu};${vendor}" TIMEOUT 420
        REQUIRED_FILES ${CMAKE_BINARY_DIR}/dom0.elf)
endforeach()
