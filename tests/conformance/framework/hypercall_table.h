// The ABI table (lib/include/lamina/abi/hypercalls.def) as data, for the cases that walk every
// hypercall: who may call it and what each argument is.
#pragma once

#include <lamina/abi/hypercalls.h>
#include <lamina/types.h>

namespace conformance {

struct HypercallEntry {
    lamina::u32 number;
    const char* name;
    bool control;  // CONTROL: the control domain only
    lamina::u32 argc;
    lamina::u32 kinds[LAMINA_HYPERCALL_MAX_ARGS];  // enum lamina_hypercall_arg_kind
    lamina::u32 bits[LAMINA_HYPERCALL_MAX_ARGS];   // a VAL's width
};

#define CONFORMANCE_ENTRY_KIND_(index, arg) LAMINA_HC_CAT(LAMINA_HC_ARG_, LAMINA_HC_ARG_KIND arg),
#define CONFORMANCE_ENTRY_BITS_(index, arg) static_cast<lamina::u32>(8 * sizeof(LAMINA_HC_ARG_TYPE arg)),
#define LAMINA_HYPERCALL(number, name, caller, argc, args, summary)                          \
    {number, #name, LAMINA_HC_CALLER_##caller == LAMINA_HC_CALLER_CONTROL, argc,            \
     {LAMINA_HC_FOR_EACH_ARG(CONFORMANCE_ENTRY_KIND_, argc, args)},                          \
     {LAMINA_HC_FOR_EACH_ARG(CONFORMANCE_ENTRY_BITS_, argc, args)}},
inline constexpr HypercallEntry kHypercallTable[] = {
#include <lamina/abi/hypercalls.def>
};
#undef CONFORMANCE_ENTRY_KIND_
#undef CONFORMANCE_ENTRY_BITS_

inline const HypercallEntry* find_hypercall(lamina::u64 number) {
    for (const HypercallEntry& e : kHypercallTable) {
        if (e.number == number) return &e;
    }
    return nullptr;
}

}  // namespace conformance
