// Shared by the fuzz harnesses: an invariant check that stops the fuzzer with a crash (so the
// input is saved as an artifact), and the LAMINA_ASSERT handler, which does the same.
#pragma once

#include <lamina/types.h>

#include <cstdio>
#include <cstring>

#define FUZZ_CHECK(cond)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            __builtin_trap();                                                              \
        }                                                                                  \
    } while (0)

namespace lamina::fuzz {

// Whether a NUL ends the string at `text` before `end`, and the string lies inside [begin, end).
inline bool string_inside(const void* text, const void* begin, const void* end) {
    const char* p = static_cast<const char*>(text);
    const char* b = static_cast<const char*>(begin);
    const char* e = static_cast<const char*>(end);
    return p >= b && p < e && std::memchr(p, '\0', static_cast<usize>(e - p)) != nullptr;
}

// Whether [pointer, pointer + length) lies inside [begin, end).
inline bool range_inside(const void* pointer, u64 length, const void* begin, const void* end) {
    const u8* p = static_cast<const u8*>(pointer);
    const u8* b = static_cast<const u8*>(begin);
    const u8* e = static_cast<const u8*>(end);
    return p >= b && p <= e && length <= static_cast<u64>(e - p);
}

// Whether a fixed-size text field holds a NUL-terminated string.
template <usize N>
bool terminated(const char (&field)[N]) {
    return std::memchr(field, '\0', N) != nullptr;
}

}  // namespace lamina::fuzz
