#include <hypervisor/hypercall/arguments.h>

#include <lamina/assert.h>
#include <lamina/string.h>

namespace lamina::hypercall {

GuestRangeCheck check_guest_array(u64 gpa, u64 count, u64 element_size, u64 max_count, u64 alignment) {
    LAMINA_ASSERT(element_size > 0 && is_power_of_two(alignment));  // the handler's constants
    if (count > max_count) return {-LAMINA_E2BIG, {}};
    if (!is_aligned(gpa, alignment)) return {-LAMINA_EINVAL, {}};
    u64 size = 0;
    u64 end = 0;
    if (mul_overflows(count, element_size, &size)) return {-LAMINA_EFAULT, {}};
    // A range may end exactly at 2^64: its last byte, not its end, must fit.
    if (size > 0 && add_overflows(gpa, size - 1, &end)) return {-LAMINA_EFAULT, {}};
    return {0, {gpa, size}};
}

GuestRangeCheck check_guest_object(u64 gpa, u64 size, u64 alignment) {
    return check_guest_array(gpa, 1, size, 1, alignment);
}

i64 bounded_string_length(const char* field, usize capacity) {
    const usize length = str::length_bounded(field, capacity);
    if (length == capacity) return -LAMINA_EINVAL;
    return static_cast<i64>(length);
}

}  // namespace lamina::hypercall
