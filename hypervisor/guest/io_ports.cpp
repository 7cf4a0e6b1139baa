#include <hypervisor/guest/io_ports.h>

namespace lamina {

IoPortMap::Status IoPortMap::claim(u16 first, u32 count, IoPortHandler& handler) {
    if (count == 0) return Status::Empty;
    u32 end = u32{first} + count;
    if (end > 0x10000) return Status::Wraps;
    for (usize i = 0; i < count_; ++i) {
        if (first < ranges_[i].end && ranges_[i].first < end) return Status::Overlaps;
    }
    if (count_ == kMaxRanges) return Status::Full;
    ranges_[count_++] = {first, end, &handler};
    return Status::Ok;
}

bool IoPortMap::release(u16 first) {
    for (usize i = 0; i < count_; ++i) {
        if (ranges_[i].first == first) {
            ranges_[i] = ranges_[--count_];
            return true;
        }
    }
    return false;
}

}  // namespace lamina
