#include <catch2/catch.hpp>

#include <hypervisor/hypercall/abi_exit_reason.h>
#include <hypervisor/hypercall/arguments.h>
#include <lamina/abi/hypercalls.h>

#include "test_support.h"

#include <cstring>
#include <set>
#include <string>

using namespace lamina;
using namespace lamina::hypercall;

namespace {

constexpr u64 kMax = ~u64{0};

void check_range(const GuestRangeCheck& check, u64 gpa, u64 size) {
    CHECK(check.error == 0);
    CHECK(check.range.gpa == gpa);
    CHECK(check.range.size == size);
}

}  // namespace

TEST_CASE("guest arrays: the range of a valid array", "[hypercall]") {
    check_range(check_guest_array(0x1000, 4, 88, 64), 0x1000, 352);
    check_range(check_guest_array(0x1003, 3, 1, 4096), 0x1003, 3);
    check_range(check_guest_array(0x2000, 64, 8, 64, 8), 0x2000, 512);  // exactly the limit
    // An empty array touches nothing: any address will do.
    check_range(check_guest_array(kMax, 0, 8, 64), kMax, 0);
    check_range(check_guest_array(0, 0, 8, 0), 0, 0);
}

TEST_CASE("guest arrays: too many elements is -E2BIG, before anything else", "[hypercall]") {
    CHECK(check_guest_array(0x1000, 65, 8, 64).error == -LAMINA_E2BIG);
    CHECK(check_guest_array(0x1000, 1, 8, 0).error == -LAMINA_E2BIG);
    // Even where the size would overflow and the address is misaligned.
    CHECK(check_guest_array(0x1001, kMax, kMax, 64, 8).error == -LAMINA_E2BIG);
}

TEST_CASE("guest arrays: a misaligned address is -EINVAL", "[hypercall]") {
    CHECK(check_guest_array(0x1004, 1, 8, 1, 8).error == -LAMINA_EINVAL);
    CHECK(check_guest_array(0x1800, 1, 4096, 1, 4096).error == -LAMINA_EINVAL);
    CHECK(check_guest_array(0x1008, 1, 8, 1, 8).error == 0);
    CHECK(check_guest_object(0x1001, 24, 2).error == -LAMINA_EINVAL);
}

TEST_CASE("guest arrays: ranges that run past 2^64 are -EFAULT", "[hypercall]") {
    // count * element_size overflows.
    CHECK(check_guest_array(0, u64{1} << 63, 2, kMax).error == -LAMINA_EFAULT);
    CHECK(check_guest_array(0, (kMax / 8) + 1, 8, kMax).error == -LAMINA_EFAULT);
    check_range(check_guest_array(0, kMax / 8, 8, kMax), 0, (kMax / 8) * 8);
    // The last byte at 2^64 - 1 is the end of the address space, not past it.
    check_range(check_guest_array(kMax - 4095, 1, 4096, 1), kMax - 4095, 4096);
    CHECK(check_guest_array(kMax - 4095, 1, 4096, 1).range.last() == kMax);
    check_range(check_guest_array(kMax, 1, 1, 1), kMax, 1);
    CHECK(check_guest_array(kMax - 4094, 1, 4096, 1).error == -LAMINA_EFAULT);
    CHECK(check_guest_array(kMax, 2, 1, 2).error == -LAMINA_EFAULT);
    CHECK(check_guest_array(kMax - 7, 2, 8, 2).error == -LAMINA_EFAULT);
    CHECK(check_guest_array(u64{1} << 63, 1, u64{1} << 63, 1).error == 0);
    CHECK(check_guest_array((u64{1} << 63) + 1, 1, u64{1} << 63, 1).error == -LAMINA_EFAULT);
    CHECK(check_guest_object(kMax - sizeof(lamina_domain_info) + 2, sizeof(lamina_domain_info)).error ==
          -LAMINA_EFAULT);
    check_range(check_guest_object(kMax - sizeof(lamina_domain_info) + 1, sizeof(lamina_domain_info)),
                kMax - sizeof(lamina_domain_info) + 1, sizeof(lamina_domain_info));
}

TEST_CASE("guest arrays: a zero element size or a bad alignment is the handler's bug", "[hypercall]") {
    CHECK_THROWS_AS(check_guest_array(0x1000, 1, 0, 1), AssertionFailure);
    CHECK_THROWS_AS(check_guest_array(0x1000, 1, 8, 1, 3), AssertionFailure);
    CHECK_THROWS_AS(check_guest_array(0x1000, 1, 8, 1, 0), AssertionFailure);
}

TEST_CASE("bounded strings: the text ends inside its field or it is -EINVAL", "[hypercall]") {
    char name[LAMINA_DOMAIN_NAME_SIZE] = {};
    CHECK(bounded_string_length(name) == 0);
    std::strcpy(name, "dom0");
    CHECK(bounded_string_length(name) == 4);
    std::memset(name, 'x', sizeof(name));
    CHECK(bounded_string_length(name) == -LAMINA_EINVAL);  // no NUL: never read past the field
    name[sizeof(name) - 1] = '\0';
    CHECK(bounded_string_length(name) == static_cast<i64>(sizeof(name) - 1));
    CHECK(bounded_string_length(name, 0) == -LAMINA_EINVAL);
}

TEST_CASE("errno: Linux's numbers and their names", "[hypercall]") {
    CHECK(LAMINA_EPERM == 1);
    CHECK(LAMINA_ENOENT == 2);
    CHECK(LAMINA_ESRCH == 3);
    CHECK(LAMINA_E2BIG == 7);
    CHECK(LAMINA_EAGAIN == 11);
    CHECK(LAMINA_ENOMEM == 12);
    CHECK(LAMINA_EFAULT == 14);
    CHECK(LAMINA_EBUSY == 16);
    CHECK(LAMINA_EEXIST == 17);
    CHECK(LAMINA_EINVAL == 22);
    CHECK(LAMINA_ENOSPC == 28);
    CHECK(LAMINA_ERANGE == 34);
    CHECK(LAMINA_ENOSYS == 38);
    CHECK(LAMINA_EOPNOTSUPP == 95);

    CHECK(std::string(lamina_errno_name(-LAMINA_EPERM)) == "EPERM");
    CHECK(std::string(lamina_errno_name(-LAMINA_ENOSYS)) == "ENOSYS");
    CHECK(std::string(lamina_errno_name(-LAMINA_E2BIG)) == "E2BIG");
    CHECK(std::string(lamina_errno_name(0)) == "OK");
    CHECK(std::string(lamina_errno_name(4095)) == "OK");  // a port, a count
    CHECK(std::string(lamina_errno_name(-4)) == "E?");
    CHECK(std::string(lamina_errno_name(INT64_MIN)) == "E?");
    // A positive errno is a value, not an error.
    CHECK(std::string(lamina_errno_name(LAMINA_EPERM)) == "OK");

    std::set<std::string> names;
#define TEST_ERRNO_(name, number, meaning)                               \
    CHECK(std::string(lamina_errno_name(-(number))) == #name);          \
    CHECK(names.insert(#name).second);                                   \
    CHECK(std::strlen(meaning) > 10);
    LAMINA_ERRNO_TABLE(TEST_ERRNO_)
#undef TEST_ERRNO_
    CHECK(names.size() == 14);
}

TEST_CASE("exit reasons: every core reason has its own ABI number", "[hypercall]") {
    std::set<u32> seen;
    for (u8 reason = 0; reason <= static_cast<u8>(ExitReason::Other); ++reason) {
        const u32 abi = abi_exit_reason(static_cast<ExitReason>(reason));
        CAPTURE(reason);
        CHECK(abi < LAMINA_EXIT_REASON_COUNT);
        CHECK(seen.insert(abi).second);
    }
    CHECK(seen.size() == LAMINA_EXIT_REASON_COUNT);
    CHECK(LAMINA_EXIT_REASON_COUNT <= LAMINA_EXIT_REASON_SLOTS);
    CHECK(abi_exit_reason(ExitReason::Hypercall) == LAMINA_EXIT_HYPERCALL);
    CHECK(abi_exit_reason(ExitReason::Other) == LAMINA_EXIT_OTHER);
}

TEST_CASE("version: the CPUID signature words spell the signature", "[hypercall]") {
    const u32 words[3] = {LAMINA_CPUID_SIGNATURE_EBX, LAMINA_CPUID_SIGNATURE_ECX, LAMINA_CPUID_SIGNATURE_EDX};
    CHECK(std::memcmp(words, LAMINA_CPUID_SIGNATURE, 12) == 0);
    CHECK(sizeof(LAMINA_CPUID_SIGNATURE) == 13);
    CHECK(LAMINA_ABI_VERSION_MAJOR_OF(LAMINA_ABI_VERSION) == LAMINA_ABI_VERSION_MAJOR);
    CHECK(LAMINA_ABI_VERSION_MINOR_OF(LAMINA_ABI_VERSION) == LAMINA_ABI_VERSION_MINOR);
    CHECK(LAMINA_ABI_VERSION_MAJOR_OF(0xabcd1234u) == 0xabcd);
    CHECK(LAMINA_ABI_VERSION_MINOR_OF(0xabcd1234u) == 0x1234);
}
