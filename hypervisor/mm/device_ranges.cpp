#include <hypervisor/mm/device_ranges.h>

namespace lamina::mm {

bool DeviceRanges::remove(u64 base, u64 end) {
    constexpr u64 kPage = 0x1000;
    base &= ~(kPage - 1);
    end = end > ~u64{0} - (kPage - 1) ? ~u64{0} & ~(kPage - 1) : (end + kPage - 1) & ~(kPage - 1);
    if (base >= end) return true;
    for (usize i = 0; i < count_;) {
        PhysRange& r = ranges_[i];
        if (end <= r.base || r.end <= base) {
            ++i;
        } else if (base <= r.base && r.end <= end) {  // all of it goes
            for (usize j = i + 1; j < count_; ++j) ranges_[j - 1] = ranges_[j];
            --count_;
        } else if (r.base < base && end < r.end) {  // a hole in the middle: two ranges
            if (count_ == kCapacity) return false;
            for (usize j = count_; j > i + 1; --j) ranges_[j] = ranges_[j - 1];
            ranges_[i + 1] = {end, r.end};
            r.end = base;
            ++count_;
            return true;
        } else {  // one end goes
            if (base <= r.base) r.base = end;
            else r.end = base;
            ++i;
        }
    }
    return true;
}

}  // namespace lamina::mm
