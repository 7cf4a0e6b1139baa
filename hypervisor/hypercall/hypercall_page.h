// The hypercall page the hypervisor writes into a guest that asks for it through
// LAMINA_HYPERCALL_PAGE_MSR (lib/include/lamina/abi/version.h has the layout guests rely on).
#pragma once

#include <lamina/abi/version.h>
#include <lamina/types.h>

namespace lamina::hypercall {

constexpr usize kPageSize = LAMINA_HYPERCALL_PAGE_SIZE;
constexpr usize kSlotSize = LAMINA_HYPERCALL_SLOT_SIZE;

// Fills `page`: the slot of every number in the table is `mov eax, number; vmcall; ret` (vmmcall
// when amd). The slot of a number the table lacks answers -ENOSYS itself, `mov rax, -ENOSYS;
// ret`: what the dispatcher would answer, so a guest built for a later minor version can probe
// for a call and fall back, and no exit is spent on it. Every byte after a slot's code is INT3,
// so that a jump into the middle of a slot traps in the guest instead of running on.
void write_hypercall_page(u8 (&page)[kPageSize], bool amd);

}  // namespace lamina::hypercall
