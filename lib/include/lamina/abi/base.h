/* Lamina hypercall ABI: what every ABI header shares.
 *
 * The ABI headers are C11 and C++20 alike, so that the hypervisor, Dom0 and guests written in
 * either language include the same text. Rules that keep the layout the same for every compiler:
 * fixed-width types only; no pointers (a guest buffer travels as its guest-physical address, in a
 * field or argument named *_gpa); enums are named for the reader but stored in uint32_t fields
 * (the size of a C enum is the compiler's choice); every struct spells out its padding (fields
 * named pad*, 0 on input, checked, and 0 on output) and states its size with LAMINA_ABI_SIZE. */
#ifndef LAMINA_ABI_BASE_H
#define LAMINA_ABI_BASE_H

#include <stdint.h>

#ifdef __cplusplus
#define LAMINA_ABI_STATIC_ASSERT(condition, message) static_assert(condition, message)
#else
#define LAMINA_ABI_STATIC_ASSERT(condition, message) _Static_assert(condition, message)
#endif

/* A struct whose size changes no longer matches what guests were built against. */
#define LAMINA_ABI_SIZE(type, size) LAMINA_ABI_STATIC_ASSERT(sizeof(type) == (size), "ABI size of " #type)

#endif
