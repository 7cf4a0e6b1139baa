// The version of the hypercall ABI that guests see (CPUID leaf 4000_0001 EAX). It moves to the
// public ABI headers when they exist: this is the one place that defines it.
#pragma once

#include <lamina/types.h>

namespace lamina::abi {

constexpr u16 kVersionMajor = 1;
constexpr u16 kVersionMinor = 0;
// major in bits 31:16, minor in bits 15:0
constexpr u32 kVersion = u32{kVersionMajor} << 16 | kVersionMinor;

}  // namespace lamina::abi
