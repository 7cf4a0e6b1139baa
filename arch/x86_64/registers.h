// Architectural bits of the control registers, EFER and RFLAGS (SDM Vol. 3A 2.5, 2.2.1; AMD APM
// Vol. 2 3.1), in one place for the hypervisor, both backends and the core. Constants only, so
// host tests can include it.
#pragma once

#include <lamina/types.h>

namespace lamina::x86 {

constexpr u64 kCr0Pe = u64{1} << 0;
constexpr u64 kCr0Mp = u64{1} << 1;
constexpr u64 kCr0Em = u64{1} << 2;
constexpr u64 kCr0Ts = u64{1} << 3;
constexpr u64 kCr0Et = u64{1} << 4;
constexpr u64 kCr0Ne = u64{1} << 5;
constexpr u64 kCr0Wp = u64{1} << 16;
constexpr u64 kCr0Am = u64{1} << 18;
constexpr u64 kCr0Nw = u64{1} << 29;
constexpr u64 kCr0Cd = u64{1} << 30;
constexpr u64 kCr0Pg = u64{1} << 31;

constexpr u64 kCr4Tsd = u64{1} << 2;
constexpr u64 kCr4De = u64{1} << 3;
constexpr u64 kCr4Pse = u64{1} << 4;
constexpr u64 kCr4Pae = u64{1} << 5;
constexpr u64 kCr4Mce = u64{1} << 6;
constexpr u64 kCr4Pge = u64{1} << 7;
constexpr u64 kCr4Pce = u64{1} << 8;
constexpr u64 kCr4Osfxsr = u64{1} << 9;
constexpr u64 kCr4Osxmmexcpt = u64{1} << 10;
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

// CR3 without PCIDE (SDM Vol. 3A 4.5): the root table's address, then two cache-control bits.
constexpr u64 kCr3Pwt = u64{1} << 3;
constexpr u64 kCr3Pcd = u64{1} << 4;

constexpr u64 kRflagsFixed = u64{1} << 1;  // always reads as one
constexpr u64 kRflagsTrap = u64{1} << 8;
constexpr u64 kRflagsInterrupt = u64{1} << 9;
constexpr u64 kRflagsIopl = u64{3} << 12;
constexpr u64 kRflagsVm = u64{1} << 17;  // virtual-8086 mode
// Bits 3, 5, 15 and 63:22 read as zero and may not be set (SDM Vol. 3A 2.3; VM entry refuses
// them, SDM Vol. 3C 27.3.1.4).
constexpr u64 kRflagsReserved = (u64{1} << 3) | (u64{1} << 5) | (u64{1} << 15) | (~u64{0} << 22);

}  // namespace lamina::x86
