// Assertions. The environment (hypervisor, dom0, host tests) supplies assert_failed():
// the hypervisor panics, host tests turn it into a test failure.
#pragma once

namespace lamina {
[[noreturn]] void assert_failed(const char* expr, const char* file, int line);
}

#define LAMINA_ASSERT(cond) \
    (__builtin_expect(!!(cond), 1) ? (void)0 : ::lamina::assert_failed(#cond, __FILE__, __LINE__))
