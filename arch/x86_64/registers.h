// Architectural bits of the control registers, EFER and RFLAGS (SDM Vol. 3A 2.5, 2.2.1; AMD APM
// Vol. 2 3.1), in one place for the hypervisor, both backends and the core. Constants only, so
// host tests can include it.
#pragma once

#include <lamina/types.h>

namespace lamina::x86 {

constexpr u64 kCr0Pe = u64{1} << 0;
constexpr u64 kCr0Ts = u64{1} << 3;
constexpr u64 kCr0Et = u64{1} << 4;
constexpr u64 kCr0Ne = u64{1} << 5;
constexpr u64 kCr0Wp = u64{1} << 16;
constexpr u64 kCr0Nw = u64{1} << 29;
constexpr u64 kCr0Cd = u64{1} << 30;
constexpr u64 kCr0Pg = u64{1} << 31;

constexpr u64 kCr4Pse = u64{1} << 4;
constexpr u64 kCr4Pae = u64{1} << 5;
constexpr u64 kCr4Pge = u64{1} << 7;
constexpr u64 kCr4La57 = u64{1} << 12;
constexpr u64 kCr4Vmxe = u64{1} << 13;
constexpr u64 kCr4Osxsave = u64{1} << 18;
constexpr u64 kCr4Smep = u64{1} << 20;
constexpr u64 kCr4Smap = u64{1} << 21;

constexpr u64 kEferSce = u64{1} << 0;
constexpr u64 kEferLme = u64{1} << 8;
constexpr u64 kEferLma = u64{1} << 10;
constexpr u64 kEferNxe = u64{1} << 11;
constexpr u64 kEferSvme = u64{1} << 12;

constexpr u64 kRflagsFixed = u64{1} << 1;  // always reads as one
constexpr u64 kRflagsInterrupt = u64{1} << 9;
constexpr u64 kRflagsVm = u64{1} << 17;  // virtual-8086 mode

}  // namespace lamina::x86
