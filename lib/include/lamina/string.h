// Byte and C-string helpers. The freestanding images also get memcpy/memset/memmove/memcmp
// (lib/src/libc_shim.cpp) because the compiler emits calls to them.
#pragma once

#include <lamina/types.h>

namespace lamina::str {

usize length(const char* s);
usize length_bounded(const char* s, usize max);
int compare(const char* a, const char* b);
int compare_n(const char* a, const char* b, usize n);
bool equal(const char* a, const char* b);
bool starts_with(const char* s, const char* prefix);
void copy_bytes(void* dst, const void* src, usize n);
void move_bytes(void* dst, const void* src, usize n);
void fill_bytes(void* dst, u8 value, usize n);
int compare_bytes(const void* a, const void* b, usize n);
// Copies at most size-1 characters and always terminates (size > 0). Returns strlen(src).
usize copy_bounded(char* dst, const char* src, usize size);

// Parses an unsigned integer in base 10, or base 16 with a 0x prefix, with an optional size
// suffix (K, M, G) when allow_suffix. Rejects empty text, junk and overflow.
bool parse_u64(const char* text, usize length, u64* out, bool allow_suffix = false);

}  // namespace lamina::str
