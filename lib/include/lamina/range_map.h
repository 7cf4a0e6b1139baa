// Which handler owns which range of an address space (a domain's I/O ports, its device
// regions): fixed capacity, no overlaps, and an access belongs to a handler only when every byte
// of it lies in that handler's range. Header-only; used on the exit path, so find() is inline.
#pragma once

#include <lamina/types.h>

namespace lamina {

enum class RangeStatus : u8 { Ok, Empty, Wraps, Overlaps, Full };

template <typename Handler, usize Capacity>
class RangeMap {
public:
    static constexpr usize kCapacity = Capacity;

    // Claims [first, first + size) below `limit` (the size of the address space; 0: all of
    // 2^64) for handler.
    RangeStatus claim(u64 first, u64 size, Handler& handler, u64 limit = 0) {
        if (size == 0) return RangeStatus::Empty;
        u64 end;
        if (add_overflows(first, size, &end) || (limit && end > limit)) return RangeStatus::Wraps;
        for (usize i = 0; i < count_; ++i) {
            if (first < ranges_[i].end && ranges_[i].first < end) return RangeStatus::Overlaps;
        }
        if (count_ == Capacity) return RangeStatus::Full;
        ranges_[count_++] = {first, end, &handler};
        return RangeStatus::Ok;
    }

    // Releases the range that starts at `first`; false if there is none.
    bool release(u64 first) {
        for (usize i = 0; i < count_; ++i) {
            if (ranges_[i].first == first) {
                ranges_[i] = ranges_[--count_];
                return true;
            }
        }
        return false;
    }

    // The handler owning every byte of [address, address + size), or null: an access that
    // straddles two ranges, or a range and a hole, belongs to nobody.
    Handler* find(u64 address, u64 size) const {
        u64 end;
        if (add_overflows(address, size, &end)) return nullptr;
        for (usize i = 0; i < count_; ++i) {
            if (address >= ranges_[i].first && end <= ranges_[i].end) return ranges_[i].handler;
        }
        return nullptr;
    }

private:
    struct Range {
        u64 first;
        u64 end;  // exclusive
        Handler* handler;
    };
    Range ranges_[Capacity] = {};
    usize count_ = 0;
};

}  // namespace lamina
