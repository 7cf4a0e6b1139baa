// Dom0's own memory as its page tables show it: lib/src/pvh_entry.S maps the first 4 GiB 1:1,
// and Dom0's RAM is guest-physical = host-physical, so a pointer into Dom0 is the guest-physical
// address the hypercalls take. What lies beyond 4 GiB is not reachable.
#pragma once

#include <dom0/toolstack/images.h>
#include <lamina/types.h>

namespace lamina::dom0 {

inline u64 gpa(const void* pointer) { return reinterpret_cast<u64>(pointer); }

constexpr toolstack::ReadableMemory kOwnMemory{0, 4 * GiB, 0};

}  // namespace lamina::dom0
