// The LAMINA_ASSERT handler of the fuzz harnesses: an assertion that outside input can reach is
// a bug, so it crashes the run like any invariant.
#include "fuzz_support.h"

#include <lamina/assert.h>

namespace lamina {
[[noreturn]] void assert_failed(const char* expr, const char* file, int line) {
    std::fprintf(stderr, "%s:%d: LAMINA_ASSERT(%s) failed\n", file, line, expr);
    __builtin_trap();
}
}  // namespace lamina
