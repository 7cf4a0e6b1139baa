// The VMX instructions (SDM Vol. 3C chapter 31), each returning whether it succeeded: VMfailInvalid
// sets CF, VMfailValid sets ZF (and the VM-instruction error field of the current VMCS).
#pragma once

#include <arch/x86_64/vmx/vmcs_fields.h>
#include <lamina/types.h>

namespace lamina::vmx {

inline bool vmread(Field field, u64* value) {
    bool failed;
    asm volatile("vmread %[field], %[value]"
                 : [value] "=r"(*value), "=@ccbe"(failed)
                 : [field] "r"(u64{static_cast<u32>(field)})
                 : "cc");
    return !failed;
}

inline bool vmwrite(Field field, u64 value) {
    bool failed;
    asm volatile("vmwrite %[value], %[field]"
                 : "=@ccbe"(failed)
                 : [field] "r"(u64{static_cast<u32>(field)}), [value] "rm"(value)
                 : "cc", "memory");
    return !failed;
}

inline bool vmclear(u64 vmcs_phys) {
    bool failed;
    asm volatile("vmclear %[vmcs]" : "=@ccbe"(failed) : [vmcs] "m"(vmcs_phys) : "cc", "memory");
    return !failed;
}

inline bool vmptrld(u64 vmcs_phys) {
    bool failed;
    asm volatile("vmptrld %[vmcs]" : "=@ccbe"(failed) : [vmcs] "m"(vmcs_phys) : "cc", "memory");
    return !failed;
}

// The physical address of the current VMCS, ~0 when there is none.
inline u64 vmptrst() {
    u64 vmcs_phys;
    asm volatile("vmptrst %[vmcs]" : [vmcs] "=m"(vmcs_phys) : : "memory");
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
