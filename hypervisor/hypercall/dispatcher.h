// The hypervisor's side of the hypercall ABI: who called, the handler interface generated from
// the table (lib/include/lamina/abi/hypercalls.def), and the dispatcher that checks the caller
// and the arguments before a handler runs. Portable: the exit handler reads the registers.
//
// How the exit handler uses it (a VMCALL / VMMCALL exit):
//
//   u64 args[kMaxArgs] = {RDI, RSI, RDX, R10, R8};
//   i64 result = dispatch(handlers, caller, RAX, args);
//   if (result == kContinue) {
//       write args[] back to RDI, RSI, RDX, R10, R8; leave RAX (the number) and RIP (the VMCALL)
//       alone, so that the guest executes the call again, after whatever interrupt or
//       reschedule is due
//   } else {
//       RAX = result; step over the VMCALL
//   }
#pragma once

#include <lamina/abi/hypercalls.h>
#include <lamina/assert.h>
#include <lamina/types.h>

namespace lamina::hypercall {

constexpr usize kMaxArgs = LAMINA_HYPERCALL_MAX_ARGS;

// What a handler returns when it stopped before the end to let the CPU do other work (Xen's
// hypercall continuation). It never reaches the guest: the guest re-executes the call with the
// arguments the handler left through Caller::continue_with, which describe what is left to do
// (a handler may also keep its progress in the objects it works on and leave them unchanged).
// Outside the errno range, so that it can never be mistaken for a result.
constexpr i64 kContinue = -512;

// The vCPU that made the call, as the exit handler found it.
struct Caller {
    u16 domain_id = 0;
    bool control_domain = false;  // the caller's domain may make CONTROL calls
    u8 cpl = 0;                   // the vCPU's privilege level (SS.DPL; the VMCB's CPL on SVM)
    bool long_mode = false;       // the vCPU runs 64-bit code (EFER.LMA and CS.L)

    // The argument registers of the call being dispatched (dispatch() sets this).
    u64* arguments = nullptr;

    // For a handler that stops early: sets the first N arguments the guest re-executes the call
    // with (the rest stay as they are) and returns kContinue, for the handler to return:
    //   return caller.continue_with({domid, first_gfn + done, count - done});
    template <usize N>
    i64 continue_with(const u64 (&next)[N]) const {
        static_assert(N >= 1 && N <= kMaxArgs, "a hypercall has at most kMaxArgs arguments");
        LAMINA_ASSERT(arguments != nullptr);
        for (usize i = 0; i < N; ++i) arguments[i] = next[i];
        return kContinue;
    }
};

// One member per table entry: i64 <name>(const Caller&, <its arguments>), called only once the
// dispatcher has checked the caller's privilege and that every VAL argument fits its type.
// A handler returns 0 or the value its entry documents, a negative LAMINA_E*, or kContinue.
class HypercallHandlers {
public:
#define LAMINA_HC_HANDLER_PARAM_(index, arg) , u64 LAMINA_HC_ARG_NAME arg
#define LAMINA_HYPERCALL(number, name, who, argc, args, summary) \
    virtual i64 name(const Caller& caller LAMINA_HC_FOR_EACH_ARG(LAMINA_HC_HANDLER_PARAM_, argc, args)) = 0;
#include <lamina/abi/hypercalls.def>
#undef LAMINA_HC_HANDLER_PARAM_

protected:
    ~HypercallHandlers() = default;
};

// Checks, in this order, and answers without calling a handler:
//   -EPERM   the caller is not at CPL 0 (its user space learns nothing, not even which numbers
//            exist)
//   -ENOSYS  the caller is not in 64-bit mode (the only calling convention), or no such number
//   -EPERM   a CONTROL call from another domain
//   -EINVAL  a VAL argument does not fit its type (a domain id above 0xffff, ...)
// then returns what the handler returns. args: RDI, RSI, RDX, R10, R8; read, and rewritten only
// when the result is kContinue.
i64 dispatch(HypercallHandlers& handlers, const Caller& caller, u64 number, u64 (&args)[kMaxArgs]);

// The table, for logs, statistics and the conformance suite's coverage check.
struct ArgInfo {
    const char* name;
    lamina_hypercall_arg_kind kind;
    const char* type;  // its C type: the value's, or for a guest-physical address the pointee's
    u32 type_size;
};

struct HypercallInfo {
    u32 number;
    const char* name;
    bool control_only;
    u8 arg_count;
    ArgInfo args[kMaxArgs];
    const char* summary;
};

#define LAMINA_HC_ARG_INFO_(index, arg)                                                \
    {LAMINA_HC_STRING(LAMINA_HC_ARG_NAME arg), LAMINA_HC_CAT(LAMINA_HC_ARG_, LAMINA_HC_ARG_KIND arg), \
     LAMINA_HC_STRING(LAMINA_HC_ARG_TYPE arg), sizeof(LAMINA_HC_ARG_TYPE arg)},
inline constexpr HypercallInfo kHypercalls[] = {
#define LAMINA_HYPERCALL(number, name, who, argc, args, summary)                                   \
    {number, #name, LAMINA_HC_CALLER_##who == LAMINA_HC_CALLER_CONTROL, argc,                     \
     {LAMINA_HC_FOR_EACH_ARG(LAMINA_HC_ARG_INFO_, argc, args)}, summary},
#include <lamina/abi/hypercalls.def>
};
#undef LAMINA_HC_ARG_INFO_
inline constexpr usize kHypercallCount = array_size(kHypercalls);

// The table entry of `number`, or null.
const HypercallInfo* find_hypercall(u64 number);
// Its name, or "unknown".
const char* hypercall_name(u64 number);

}  // namespace lamina::hypercall
