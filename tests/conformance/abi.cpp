// The ABI itself, as an unprivileged domain sees it: discovery, the hypercall page, the calling
// convention (registers kept, numbers in full RAX), and the checks every call goes through
// before its handler, in the documented order (docs/hypercall-abi.md, "Calling convention").
// The table-wide cases walk lib/include/lamina/abi/hypercalls.def, so a new hypercall is in them
// without an edit here.
#include <tests/conformance/framework/conformance.h>
#include <tests/conformance/framework/hypercall_table.h>
#include <tests/guests/traps.h>

CONFORMANCE_KERNEL("abi", Functional);

using namespace conformance;

HYPERCALL_TEST(version) {
    u32 eax, ebx, ecx, edx;
    lamina_cpuid(LAMINA_CPUID_LEAF_VERSION, &eax, &ebx, &ecx, &edx);
    t.returns(lamina_hc_version(), LAMINA_ABI_VERSION, "version is LAMINA_ABI_VERSION");
    t.returns(lamina_hc_version(), eax, "version matches CPUID 0x40000001 EAX");
    t.check(LAMINA_ABI_VERSION_MAJOR_OF(eax) == LAMINA_ABI_VERSION_MAJOR, "the major version is this ABI's");
    t.returns(raw_hypercall(LAMINA_HYPERCALL_version, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull), LAMINA_ABI_VERSION,
              "version ignores the argument registers");
    t.check(!(ebx & LAMINA_CPUID_DOMAIN_CONTROL), "CPUID says this is not the control domain");
    t.check(ecx != LAMINA_DOMID_CONTROL && ecx <= LAMINA_DOMID_MAX, "CPUID ECX is this domain's id, not Dom0's", "{}",
            ecx);
    t.check(edx == 0, "CPUID 0x40000001 EDX is 0", "{:#x}", edx);
}

HYPERCALL_TEST(features) {
    t.returns(lamina_hc_features(LAMINA_FEATURES_WORD0), 0, "features: word 0 has no control-domain bit here");
    t.returns(lamina_hc_features(1), 0, "features: an undefined word reads 0");
    t.returns(lamina_hc_features(0xffffffff), 0, "features: the last word reads 0");
    t.returns(raw_hypercall(LAMINA_HYPERCALL_features, u64{1} << 32), kEinval, "features: a word wider than 32 bits");
}

HYPERCALL_TEST(shutdown) {
    // A valid reason ends the domain: the kernel's own last call (poweroff), which the runner
    // checks; here the refusals, which must leave the domain running.
    t.returns(lamina_hc_shutdown(LAMINA_SHUTDOWN_CRASH + 1), kEinval, "shutdown: an unknown reason");
    t.returns(lamina_hc_shutdown(0xffffffff), kEinval, "shutdown: the largest 32-bit reason");
    t.returns(raw_hypercall(LAMINA_HYPERCALL_shutdown, u64{1} << 32), kEinval, "shutdown: a reason wider than 32 bits");
    t.returns(lamina_hc_version(), LAMINA_ABI_VERSION, "shutdown: the domain still runs after the refusals");
}

TEST_CASE(unknown_numbers, "numbers without a hypercall are ENOSYS") {
    u32 unused = 0, wrong = 0;
    for (u64 number = 0; number < LAMINA_HYPERCALL_SLOTS; ++number) {
        if (find_hypercall(number)) continue;
        ++unused;
        const u64 slot = reinterpret_cast<u64>(lamina_hypercall_page) + number * LAMINA_HYPERCALL_SLOT_SIZE;
        i64 through_page;
        asm volatile("call *%1" : "=a"(through_page) : "r"(slot) : "rdi", "rsi", "rdx", "r10", "r8", "memory", "cc");
        if (through_page != kEnosys || raw_hypercall(number) != kEnosys) {
            ++wrong;
            t.check(false, "an unused number is ENOSYS", "number {:#x}", number);
        }
    }
    t.check(wrong == 0, "every unused slot and number below the slot count is ENOSYS", "{} of {} wrong", wrong, unused);
    const u64 beyond[] = {LAMINA_HYPERCALL_SLOTS, 0xffff, 0xffffffff, (u64{1} << 32) | LAMINA_HYPERCALL_version,
                          (u64{1} << 63) | LAMINA_HYPERCALL_version, ~u64{0}};
    for (u64 number : beyond) {
        char what[64];
        format_to(what, sizeof(what), "number {:#x} is ENOSYS", number);
        t.returns(raw_hypercall(number), kEnosys, what);
    }
}

TEST_CASE(hypercall_page, "the hypercall page's slots") {
    const guest::Cpuid vendor = guest::cpuid(0);
    const bool amd = vendor.ebx == 0x68747541;  // "Auth"enticAMD
    const u8 vm_call[] = {0x0f, 0x01, static_cast<u8>(amd ? 0xd9 : 0xc1)};
    u32 bad = 0;
    for (u32 number = 0; number < LAMINA_HYPERCALL_SLOTS; ++number) {
        const u8* slot = lamina_hypercall_page + number * LAMINA_HYPERCALL_SLOT_SIZE;
        bool ok;
        if (find_hypercall(number)) {
            ok = slot[0] == 0xb8 && slot[1] == number && slot[2] == 0 && slot[3] == 0 && slot[4] == 0 &&
                 slot[5] == vm_call[0] && slot[6] == vm_call[1] && slot[7] == vm_call[2] && slot[8] == 0xc3;
        } else {
            const u8 enosys[] = {0x48, 0xc7, 0xc0, 0xda, 0xff, 0xff, 0xff, 0xc3};
            ok = str::compare_bytes(slot, enosys, sizeof(enosys)) == 0;
        }
        if (!ok) {
            ++bad;
            t.check(false, "a slot holds its documented bytes", "slot {:#x}", number);
        }
    }
    t.check(bad == 0, amd ? "every slot is mov eax, N; vmmcall; ret or mov rax, -ENOSYS; ret"
                          : "every slot is mov eax, N; vmcall; ret or mov rax, -ENOSYS; ret");
    u64 value = 0;
    t.check(guest::rdmsr_checked(LAMINA_HYPERCALL_PAGE_MSR, &value) == 13, "the hypercall-page MSR is write-only (#GP)");
    t.returns(lamina_detect(), LAMINA_ABI_VERSION, "discovery: CPUID 0x40000000 names Lamina and this ABI");
}

TEST_CASE(registers_kept, "a call keeps every register but RAX and the argument registers") {
    // Patterns in RBX, RCX, RBP, R9, R11-R15; RSP must come back too.
    u64 before[9], after[9];
    for (u32 i = 0; i < 9; ++i) before[i] = 0x1111111111111111ull * (i + 1);
    u64 rsp_before, rsp_after;
    u64* in = before;
    u64* out = after;
    u64 entry = raw_entry();
    asm volatile(
        "mov %%rsp, %[rsp_before]\n\t"
        "push %%rbp\n\t"
        "mov 0(%[in]), %%rbx\n\t mov 8(%[in]), %%rcx\n\t mov 16(%[in]), %%rbp\n\t mov 24(%[in]), %%r9\n\t"
        "mov 32(%[in]), %%r11\n\t mov 40(%[in]), %%r12\n\t mov 48(%[in]), %%r13\n\t mov 56(%[in]), %%r14\n\t"
        "mov 64(%[in]), %%r15\n\t"
        "push %[out]\n\t"
        "mov %[number], %%eax\n\t"
        "lea -128(%%rsp), %%rsp\n\t call *%[entry]\n\t lea 128(%%rsp), %%rsp\n\t"
        "pop %%rax\n\t"
        "mov %%rbx, 0(%%rax)\n\t mov %%rcx, 8(%%rax)\n\t mov %%rbp, 16(%%rax)\n\t mov %%r9, 24(%%rax)\n\t"
        "mov %%r11, 32(%%rax)\n\t mov %%r12, 40(%%rax)\n\t mov %%r13, 48(%%rax)\n\t mov %%r14, 56(%%rax)\n\t"
        "mov %%r15, 64(%%rax)\n\t"
        "pop %%rbp\n\t"
        "mov %%rsp, %[rsp_after]"
        : [rsp_before] "=&m"(rsp_before), [rsp_after] "=m"(rsp_after), [in] "+D"(in), [out] "+S"(out),
          [entry] "+d"(entry)
        : [number] "i"(LAMINA_HYPERCALL_version)
        : "rax", "rbx", "rcx", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "memory", "cc");
    const char* names[] = {"rbx", "rcx", "rbp", "r9", "r11", "r12", "r13", "r14", "r15"};
    for (u32 i = 0; i < 9; ++i) {
        char what[48];
        format_to(what, sizeof(what), "{} is kept", names[i]);
        t.check(after[i] == before[i], what, "{:#x} became {:#x}", before[i], after[i]);
    }
    t.check(rsp_after == rsp_before, "rsp is kept");
}

TEST_CASE(control_calls_refused, "every control-domain call is EPERM for an unprivileged domain") {
    for (const HypercallEntry& e : kHypercallTable) {
        if (!e.control) continue;
        char what[80];
        format_to(what, sizeof(what), "{}: EPERM, before its arguments are looked at", e.name);
        // Arguments that would be wrong in every way: the privilege check comes first.
        t.returns(raw_hypercall(e.number, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull), kEperm, what);
        format_to(what, sizeof(what), "{}: EPERM with zero arguments", e.name);
        t.returns(raw_hypercall(e.number), kEperm, what);
    }
}

TEST_CASE(user_mode_refused, "every call from user mode is EPERM") {
    for (const HypercallEntry& e : kHypercallTable) {
        char what[64];
        format_to(what, sizeof(what), "{} from CPL 3", e.name);
        t.returns(user_mode_hypercall(e.number), kEperm, what);
    }
    t.returns(user_mode_hypercall(LAMINA_HYPERCALL_SLOTS + 1), kEperm, "an unknown number from CPL 3 (EPERM first)");
}

TEST_CASE(compat_mode_refused, "a call from 32-bit compatibility mode is ENOSYS") {
    t.returns(compat_mode_hypercall(LAMINA_HYPERCALL_version), kEnosys, "version from compatibility mode");
    t.returns(compat_mode_hypercall(LAMINA_HYPERCALL_vcpu_yield), kEnosys, "vcpu_yield from compatibility mode");
}

TEST_CASE(argument_widths, "a value wider than its type and a page argument off a page are EINVAL") {
    for (const HypercallEntry& e : kHypercallTable) {
        if (e.control) continue;
        for (u32 i = 0; i < e.argc; ++i) {
            u64 args[LAMINA_HYPERCALL_MAX_ARGS] = {};
            const char* problem;
            if (e.kinds[i] == LAMINA_HC_ARG_VAL && e.bits[i] < 64) {
                args[i] = u64{1} << e.bits[i];
                problem = "one past its type";
            } else if (e.kinds[i] == LAMINA_HC_ARG_PAGE) {
                args[i] = 0x200000 + 8;
                problem = "not page-aligned";
            } else {
                continue;
            }
            char what[96];
            format_to(what, sizeof(what), "{}: argument {} {}", e.name, i, problem);
            t.returns(raw_hypercall(e.number, args[0], args[1], args[2], args[3], args[4]), kEinval, what);
        }
    }
}
