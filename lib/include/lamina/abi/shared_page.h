/* Lamina hypercall ABI: pages one domain shares with another, for rings (shared_page_grant and
 * the calls after it). The granting domain keeps owning the page; the other maps it into its
 * own guest-physical space by the grant's reference. */
#ifndef LAMINA_ABI_SHARED_PAGE_H
#define LAMINA_ABI_SHARED_PAGE_H

#include <lamina/abi/base.h>

/* Grants a domain may have outstanding; references are 0 to this - 1. */
#define LAMINA_SHARED_PAGE_GRANTS 1024u

#define LAMINA_SHARE_READONLY (1u << 0) /* the other domain may only read the page */

#endif
