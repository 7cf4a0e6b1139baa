// The ABI's vCPU context (struct lamina_vcpu_context, lib/include/lamina/abi/vcpu.h) checked
// against the rules vcpu.h states and turned into the vCPU interface's EntryState. Both calls
// that take one, domain_set_vcpu_context and vcpu_up, go through here; the backends load what
// passed without checking it again.
#pragma once

#include <hypervisor/vcpu.h>
#include <lamina/abi/vcpu.h>

namespace lamina::hypercall {

// `entry` as `context` asks, or false (the calls' -EINVAL) when it breaks a rule; `entry` is
// written only on success. `physical_address_bits` is the guest's MAXPHYADDR, which bounds a
// LONG64 context's CR3.
bool entry_state_from_context(const lamina_vcpu_context& context, u8 physical_address_bits, EntryState* entry);

}  // namespace lamina::hypercall
