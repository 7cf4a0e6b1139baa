/* Lamina hypercall ABI: the control domain's console on the physical UART (console_write,
 * console_read). Other domains' consoles are Dom0's business (its device models and backends). */
#ifndef LAMINA_ABI_CONSOLE_H
#define LAMINA_ABI_CONSOLE_H

#include <lamina/abi/base.h>

/* Bytes one console_write or console_read call moves, at most. */
#define LAMINA_CONSOLE_IO_MAX 4096u

#endif
