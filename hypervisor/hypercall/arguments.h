// Checks a hypercall handler makes on its arguments before it touches guest memory. They only
// look at numbers: whether the memory is the caller's RAM is the guest memory accessor's
// question (-EFAULT), asked when the handler copies.
#pragma once

#include <lamina/abi/errno.h>
#include <lamina/types.h>

namespace lamina::hypercall {

// Bytes [gpa, gpa + size) of guest-physical memory; size 0 is an empty range. The range may end
// at 2^64 exactly, so its end is not always a u64: use last().
struct GuestRange {
    u64 gpa;
    u64 size;

    u64 last() const { return gpa + size - 1; }  // only when size > 0
};

struct GuestRangeCheck {
    i64 error;  // 0, or a negative LAMINA_E*; range is meaningful only when 0
    GuestRange range;
};

// An array argument: `count` elements of `element_size` bytes (> 0) at `gpa`, which must be a
// multiple of `alignment` (a power of two; 1 when any address will do). In this order:
//   -E2BIG   count > max_count, the most the call accepts
//   -EINVAL  gpa is not aligned
//   -EFAULT  count * element_size, or the range's last byte, is past 2^64 - 1
GuestRangeCheck check_guest_array(u64 gpa, u64 count, u64 element_size, u64 max_count, u64 alignment = 1);

// One object of `size` bytes (> 0) at `gpa`: check_guest_array with a count of 1.
GuestRangeCheck check_guest_object(u64 gpa, u64 size, u64 alignment = 1);

// The length of the NUL-terminated text in a fixed-size field of a struct the handler copied in
// (a domain name), or -EINVAL when the field holds no NUL: the guest's text never runs past it.
i64 bounded_string_length(const char* field, usize capacity);

template <usize N>
i64 bounded_string_length(const char (&field)[N]) {
    return bounded_string_length(field, N);
}

}  // namespace lamina::hypercall
