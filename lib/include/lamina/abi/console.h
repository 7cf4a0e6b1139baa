/* Lamina hypercall ABI: the control domain's console on the physical UART (console_write,
 * console_read). Other domains' consoles are rings that Dom0 reads (struct lamina_console_ring). */
#ifndef LAMINA_ABI_CONSOLE_H
#define LAMINA_ABI_CONSOLE_H

#include <lamina/abi/base.h>

/* Bytes one console_write or console_read call moves, at most. */
#define LAMINA_CONSOLE_IO_MAX 4096u

/* A domain's console: one page of the domain's RAM that the toolstack chose (domain_set_console)
 * and keeps mapped. Each direction is a byte ring with free-running indices (index modulo the
 * size is the position): the producer writes bytes, then advances its index; the consumer reads,
 * then advances its own. The domain produces `out` and consumes `in`. */
#define LAMINA_CONSOLE_RING_IN_SIZE 1024u
#define LAMINA_CONSOLE_RING_OUT_SIZE 2048u
struct lamina_console_ring {
    char in[LAMINA_CONSOLE_RING_IN_SIZE];
    char out[LAMINA_CONSOLE_RING_OUT_SIZE];
    uint32_t in_cons;
    uint32_t in_prod;
    uint32_t out_cons;
    uint32_t out_prod;
};
LAMINA_ABI_SIZE(struct lamina_console_ring, 3088);

#endif
