/* Lamina hypercall ABI: the hypercall numbers, and the macros that walk an entry of the table
 * (hypercalls.def) for the code generated from it. Includes every header whose types the table
 * names. */
#ifndef LAMINA_ABI_HYPERCALLS_H
#define LAMINA_ABI_HYPERCALLS_H

#include <lamina/abi/base.h>
#include <lamina/abi/console.h>
#include <lamina/abi/domain.h>
#include <lamina/abi/errno.h>
#include <lamina/abi/event_channel.h>
#include <lamina/abi/host.h>
#include <lamina/abi/sched.h>
#include <lamina/abi/shared_page.h>
#include <lamina/abi/stats.h>
#include <lamina/abi/vcpu.h>
#include <lamina/abi/version.h>

/* LAMINA_HYPERCALL_domain_create and so on (Xen spells them __HYPERVISOR_name). */
enum lamina_hypercall_number {
#define LAMINA_HYPERCALL(number, name, caller, argc, args, summary) LAMINA_HYPERCALL_##name = number,
#include <lamina/abi/hypercalls.def>
};

/* Every number has a slot in the one hypercall page. */
#define LAMINA_HYPERCALL(number, name, caller, argc, args, summary) \
    LAMINA_ABI_STATIC_ASSERT((number) < LAMINA_HYPERCALL_SLOTS, #name " has a hypercall page slot");
#include <lamina/abi/hypercalls.def>

/* Who may make a call: an entry's `caller`, as LAMINA_HC_CALLER_##caller. */
enum lamina_hypercall_caller {
    LAMINA_HC_CALLER_ANY = 0,
    LAMINA_HC_CALLER_CONTROL = 1
};

/* What an argument is: an argument's `kind`, as LAMINA_HC_ARG_##kind. */
enum lamina_hypercall_arg_kind {
    LAMINA_HC_ARG_VAL = 0,
    LAMINA_HC_ARG_IN = 1,
    LAMINA_HC_ARG_OUT = 2,
    LAMINA_HC_ARG_INOUT = 3,
    LAMINA_HC_ARG_PAGE = 4
};

/* The parts of an argument tuple (name, kind, type): LAMINA_HC_ARG_NAME arg. */
#define LAMINA_HC_ARG_NAME(name, kind, type) name
#define LAMINA_HC_ARG_KIND(name, kind, type) kind
#define LAMINA_HC_ARG_TYPE(name, kind, type) type

#define LAMINA_HC_CAT_(a, b) a##b
#define LAMINA_HC_CAT(a, b) LAMINA_HC_CAT_(a, b)
#define LAMINA_HC_STRING_(...) #__VA_ARGS__
#define LAMINA_HC_STRING(...) LAMINA_HC_STRING_(__VA_ARGS__)
#define LAMINA_HC_EXPAND(...) __VA_ARGS__
#define LAMINA_HC_APPLY_(macro, ...) macro(__VA_ARGS__)

/* Expands F(index, (name, kind, type)) for each argument of an entry, in order, with nothing in
 * between: LAMINA_HC_FOR_EACH_ARG(F, argc, args). A wrong argc does not compile. */
#define LAMINA_HC_FOR_EACH_ARG(F, argc, args) \
    LAMINA_HC_APPLY_(LAMINA_HC_CAT(LAMINA_HC_EACH_, argc), F, LAMINA_HC_EXPAND args)
#define LAMINA_HC_EACH_0(F, none)
#define LAMINA_HC_EACH_1(F, a) F(0, a)
#define LAMINA_HC_EACH_2(F, a, b) F(0, a) F(1, b)
#define LAMINA_HC_EACH_3(F, a, b, c) F(0, a) F(1, b) F(2, c)
#define LAMINA_HC_EACH_4(F, a, b, c, d) F(0, a) F(1, b) F(2, c) F(3, d)
#define LAMINA_HC_EACH_5(F, a, b, c, d, e) F(0, a) F(1, b) F(2, c) F(3, d) F(4, e)

#endif
