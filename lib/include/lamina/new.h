// Placement new, so objects can be built in memory the caller already owns. Hosted builds take
// it from the C++ library; the freestanding images have none and declare it here.
#pragma once

#if __STDC_HOSTED__
#include <new>
#else
#include <lamina/types.h>

inline void* operator new(lamina::usize, void* place) noexcept { return place; }
inline void* operator new[](lamina::usize, void* place) noexcept { return place; }
inline void operator delete(void*, void*) noexcept {}
inline void operator delete[](void*, void*) noexcept {}
#endif
