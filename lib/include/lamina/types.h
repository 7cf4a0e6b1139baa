// Basic freestanding types and compiler helpers shared by every layer.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace lamina {

using u8 = uint8_t;
using u16 = uint16_t;
using u32 = uint32_t;
using u64 = uint64_t;
using i8 = int8_t;
using i16 = int16_t;
using i32 = int32_t;
using i64 = int64_t;
using usize = size_t;
using uptr = uintptr_t;

constexpr u64 KiB = 1024;
constexpr u64 MiB = 1024 * KiB;
constexpr u64 GiB = 1024 * MiB;

constexpr bool is_power_of_two(u64 v) { return v != 0 && (v & (v - 1)) == 0; }
constexpr u64 align_down(u64 v, u64 a) { return v & ~(a - 1); }
constexpr u64 align_up(u64 v, u64 a) { return (v + a - 1) & ~(a - 1); }
constexpr bool is_aligned(u64 v, u64 a) { return (v & (a - 1)) == 0; }

// Overflow-checked arithmetic for sizes that come from outside (boot info, tables, guests).
constexpr bool add_overflows(u64 a, u64 b, u64* out) { return __builtin_add_overflow(a, b, out); }
constexpr bool mul_overflows(u64 a, u64 b, u64* out) { return __builtin_mul_overflow(a, b, out); }

template <typename T, usize N>
constexpr usize array_size(const T (&)[N]) { return N; }

template <typename T>
constexpr const T& min(const T& a, const T& b) { return b < a ? b : a; }
template <typename T>
constexpr const T& max(const T& a, const T& b) { return a < b ? b : a; }

}  // namespace lamina

#define LAMINA_NORETURN [[noreturn]]
#define LAMINA_PACKED __attribute__((packed))
#define LAMINA_ALIGNED(n) __attribute__((aligned(n)))
#define LAMINA_LIKELY(x) __builtin_expect(!!(x), 1)
#define LAMINA_UNLIKELY(x) __builtin_expect(!!(x), 0)
