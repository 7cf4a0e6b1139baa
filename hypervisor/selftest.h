// In-image self-tests, run by the `selftest` boot option and reported in the harness protocol:
//   ok <n> - <name> / not ok <n> - <name> # <why>, a plan line 1..<N>, then
//   LAMINA RESULT PASS|FAIL passed=<p> failed=<f>
// Tests sit next to the code they test:  LAMINA_SELFTEST("frame allocator: reuse") { ... }
#pragma once

#include <lamina/format.h>

namespace lamina::selftest {

class Context {
public:
    template <typename... A>
    bool expect(bool condition, const char* fmt, const A&... args) {
        if (!condition) {
            const FormatArg list[] = {FormatArg(args)..., FormatArg(0)};
            fail(fmt, list, sizeof...(A));
        }
        return condition;
    }
    bool failed() const { return failed_; }
    const char* reason() const { return reason_; }

private:
    void fail(const char* fmt, const FormatArg* args, usize count);
    bool failed_ = false;
    char reason_[160] = {};
};

struct Test {
    const char* name;
    void (*run)(Context&);
};

// Runs every registered test; returns the number that failed.
u32 run_all();

}  // namespace lamina::selftest

#define LAMINA_SELFTEST_CONCAT2(a, b) a##b
#define LAMINA_SELFTEST_CONCAT(a, b) LAMINA_SELFTEST_CONCAT2(a, b)
#define LAMINA_SELFTEST(test_name)                                                          \
    static void LAMINA_SELFTEST_CONCAT(selftest_body_, __LINE__)(::lamina::selftest::Context&); \
    [[gnu::used, gnu::section(".selftests")]] static const ::lamina::selftest::Test            \
        LAMINA_SELFTEST_CONCAT(selftest_entry_, __LINE__) = {                               \
            test_name, LAMINA_SELFTEST_CONCAT(selftest_body_, __LINE__)};                   \
    static void LAMINA_SELFTEST_CONCAT(selftest_body_, __LINE__)(::lamina::selftest::Context & t)
