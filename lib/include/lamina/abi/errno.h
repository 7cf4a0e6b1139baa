/* Lamina hypercall ABI: error numbers.
 *
 * A hypercall returns, in RAX, a negative error number on failure and 0 or a non-negative value
 * its table entry documents (a port, a count) on success. The numbers are Linux's, so that a
 * Linux-hosted toolstack can hand them to strerror() unchanged. */
#ifndef LAMINA_ABI_ERRNO_H
#define LAMINA_ABI_ERRNO_H

#include <lamina/abi/base.h>

/* X(name, number, meaning in the ABI) */
#define LAMINA_ERRNO_TABLE(X)                                                                      \
    X(EPERM, 1, "not allowed: a control-domain call from another domain, or a call from CPL > 0") \
    X(ENOENT, 2, "the thing asked for does not exist (no fault report, no such grant)")          \
    X(ESRCH, 3, "no such domain")                                                                 \
    X(E2BIG, 7, "a length or count is larger than the call accepts")                              \
    X(EAGAIN, 11, "try again later: the resource is busy for the moment")                         \
    X(ENOMEM, 12, "the hypervisor is out of memory")                                              \
    X(EFAULT, 14, "a guest-physical address is not RAM of the caller, or the range wraps")         \
    X(EBUSY, 16, "the object is in use (mapped, running, up)")                                    \
    X(EEXIST, 17, "the object already exists (a name, a mapping, a binding)")                     \
    X(EINVAL, 22, "an argument is out of its range, or a reserved field is not 0")                \
    X(ENOSPC, 28, "a limit is reached (domains, ports, a domain's memory)")                        \
    X(ERANGE, 34, "the ABI major version differs from the one the guest was built for")           \
    X(ENOSYS, 38, "no such hypercall, or not from this CPU mode")                                 \
    X(EOPNOTSUPP, 95, "the call exists but this host or domain cannot do it")

enum lamina_errno {
#define LAMINA_ERRNO_ENUM_(name, number, meaning) LAMINA_##name = number,
    LAMINA_ERRNO_TABLE(LAMINA_ERRNO_ENUM_)
#undef LAMINA_ERRNO_ENUM_
};

/* The name of a hypercall result: "EPERM" for -LAMINA_EPERM, "OK" for a success (>= 0), "E?" for
 * a negative number this version does not define. */
static inline const char *lamina_errno_name(int64_t result) {
    switch (result) {
#define LAMINA_ERRNO_CASE_(name, number, meaning) \
    case -(number): return #name;
        LAMINA_ERRNO_TABLE(LAMINA_ERRNO_CASE_)
#undef LAMINA_ERRNO_CASE_
        default: break;
    }
    return result >= 0 ? "OK" : "E?";
}

#endif
