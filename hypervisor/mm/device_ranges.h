// The host-physical ranges that are device memory for the control domain: below a limit, what
// the firmware's memory map does not call RAM, less what the hypervisor keeps (local APIC,
// I/O APICs, IOMMUs) and the guest-physical window its toolstack uses. Dom0 gets them mapped
// 1:1 and uncached, so that it can drive the devices there. Portable (Catch2 tests).
#pragma once

#include <lamina/types.h>

namespace lamina::mm {

struct PhysRange {
    u64 base;
    u64 end;  // exclusive
};

class DeviceRanges {
public:
    static constexpr usize kCapacity = 128;

    // Everything in [0, limit): page-aligned.
    explicit DeviceRanges(u64 limit) {
        ranges_[0] = {0, limit & ~u64{0xfff}};
        count_ = ranges_[0].end ? 1 : 0;
    }
    // Takes [base, end) out, widened to whole pages (a page partly RAM or partly the
    // hypervisor's is not a device page). False when the ranges would no longer fit.
    bool remove(u64 base, u64 end);

    usize count() const { return count_; }
    const PhysRange& operator[](usize i) const { return ranges_[i]; }

private:
    PhysRange ranges_[kCapacity];
    usize count_;
};

}  // namespace lamina::mm
