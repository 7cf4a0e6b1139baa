// The hypervisor's allocator for kernel objects (domains, vCPUs, event channels later):
// size-class slabs over frames from the frame allocator, reached through the physmap. There is
// no global operator new: every allocation is explicit and may fail.
#pragma once

#include <hypervisor/mm/object_allocator.h>

namespace lamina {
ObjectAllocator& heap();
}
