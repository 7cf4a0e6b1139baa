// The VMX instructions (SDM Vol. 3C chapter 31), each returning whether it succeeded: VMfailInvalid
// sets CF, VMfailValid sets ZF (and the VM-instruction error field of the current VMCS).
#pragma once

#include <arch/x86_64/vmx/vmcs_fields.h>
#include <lamina/types.h>

namespace lamina::vmx {

// VMREAD of a field of the current VMCS. It fails only without a current VMCS or for a field
// the CPU lacks, and then leaves the destination as it was: 0 here. Register operands only: a
// local whose address an asm takes would cost every caller a stack-protector check.
inline u64 vmread(Field field) {
    u64 value = 0;
    asm volatile("vmread %[field], %[value]"
                 : [value] "+r"(value)
                 : [field] "r"(u64{static_cast<u32>(field)})
                 : "cc");
    return value;
}

inline bool vmwrite(Field field, u64 value) {
    bool failed;
    asm volatile("vmwrite %[value], %[field]"
                 : "=@ccbe"(failed)
                 : [field] "r"(u64{static_cast<u32>(field)}), [value] "r"(value)
                 : "cc", "memory");
    return !failed;
}

// The address operands are references: the instruction reads the caller's own variable, not a
// copy on the stack.
inline bool vmclear(const u64& vmcs_phys) {
    bool failed;
    asm volatile("vmclear %[vmcs]" : "=@ccbe"(failed) : [vmcs] "m"(vmcs_phys) : "cc", "memory");
    return !failed;
}

inline bool vmptrld(const u64& vmcs_phys) {
    bool failed;
    asm volatile("vmptrld %[vmcs]" : "=@ccbe"(failed) : [vmcs] "m"(vmcs_phys) : "cc", "memory");
    return !failed;
}

// The physical address of the current VMCS, ~0 when there is none. VMPTRST stores only to
// memory: a slot pushed for it here, as a local would cost the caller a stack-protector check.
inline u64 vmptrst() {
    u64 vmcs_phys;
    asm volatile("subq $8, %%rsp\n\t"
                 "vmptrst (%%rsp)\n\t"
                 "popq %[vmcs]"
                 : [vmcs] "=r"(vmcs_phys)
                 :
                 : "memory");
    return vmcs_phys;
}

// INVEPT and INVVPID types (SDM Vol. 3C 31.3, instruction reference).
enum class InveptType : u64 { SingleContext = 1, AllContexts = 2 };
enum class InvvpidType : u64 { SingleContext = 1, AllContexts = 2 };

inline bool invept(InveptType type, u64 eptp) {
    struct {
        u64 eptp;
        u64 reserved;
    } descriptor = {eptp, 0};
    bool failed;
    asm volatile("invept %[descriptor], %[type]"
                 : "=@ccbe"(failed)
                 : [descriptor] "m"(descriptor), [type] "r"(static_cast<u64>(type))
                 : "cc", "memory");
    return !failed;
}

inline bool invvpid(InvvpidType type, u16 vpid) {
    struct {
        u64 vpid;  // bits 63:16 reserved, zero
        u64 linear_address;  // for the individual-address type only
    } descriptor = {vpid, 0};
    bool failed;
    asm volatile("invvpid %[descriptor], %[type]"
                 : "=@ccbe"(failed)
                 : [descriptor] "m"(descriptor), [type] "r"(static_cast<u64>(type))
                 : "cc", "memory");
    return !failed;
}

}  // namespace lamina::vmx
