#include <hypervisor/hypercall/dispatcher.h>

namespace lamina::hypercall {
namespace {

// The checks the table's argument kinds allow before any handler runs: a VAL must fit its type,
// a PAGE must be page-aligned; IN, OUT and INOUT addresses are the guest memory accessors' to
// check, when the handler copies.
template <lamina_hypercall_arg_kind Kind, typename T>
constexpr bool argument_fits(u64 value) {
    if constexpr (Kind == LAMINA_HC_ARG_VAL) {
        static_assert(static_cast<T>(-1) > static_cast<T>(0), "a VAL argument has an unsigned type");
        return value == static_cast<T>(value);
    } else if constexpr (Kind == LAMINA_HC_ARG_PAGE) {
        return is_aligned(value, LAMINA_HYPERCALL_PAGE_SIZE);
    } else {
        return true;
    }
}

}  // namespace

i64 dispatch(HypercallHandlers& handlers, const Caller& caller, u64 number, u64 (&args)[kMaxArgs]) {
    if (caller.cpl != 0) return -LAMINA_EPERM;
    if (!caller.long_mode) return -LAMINA_ENOSYS;
    Caller call = caller;
    call.arguments = args;

    switch (number) {
#define LAMINA_HC_FITS_(index, arg) \
    &&argument_fits<LAMINA_HC_CAT(LAMINA_HC_ARG_, LAMINA_HC_ARG_KIND arg), LAMINA_HC_ARG_TYPE arg>(args[index])
#define LAMINA_HC_PASS_(index, arg) , args[index]
#define LAMINA_HYPERCALL(number, name, who, argc, arg_list, summary)                                  \
    case number:                                                                                      \
        if (LAMINA_HC_CALLER_##who == LAMINA_HC_CALLER_CONTROL && !caller.control_domain) {          \
            return -LAMINA_EPERM;                                                                     \
        }                                                                                             \
        if (!(true LAMINA_HC_FOR_EACH_ARG(LAMINA_HC_FITS_, argc, arg_list))) return -LAMINA_EINVAL; \
        return handlers.name(call LAMINA_HC_FOR_EACH_ARG(LAMINA_HC_PASS_, argc, arg_list));
#include <lamina/abi/hypercalls.def>
#undef LAMINA_HC_FITS_
#undef LAMINA_HC_PASS_
        default: return -LAMINA_ENOSYS;
    }
}

const HypercallInfo* find_hypercall(u64 number) {
    for (const HypercallInfo& info : kHypercalls) {
        if (info.number == number) return &info;
    }
    return nullptr;
}

const char* hypercall_name(u64 number) {
    const HypercallInfo* info = find_hypercall(number);
    return info ? info->name : "unknown";
}

}  // namespace lamina::hypercall
