// A domain's port I/O map: which handler owns which ports. Exits for a port nobody claims read
// all ones and drop writes (ExitHandler). Hardware-independent (Catch2 tests).
#pragma once

#include <lamina/types.h>

namespace lamina {

class IoPortHandler {
public:
    // `size` is 1, 2 or 4; a read returns the value in its low `size` bytes.
    virtual u32 read(u16 port, u8 size) = 0;
    virtual void write(u16 port, u8 size, u32 value) = 0;

protected:
    ~IoPortHandler() = default;
};

class IoPortMap {
public:
    static constexpr usize kMaxRanges = 16;
    enum class Status : u8 { Ok, Empty, Wraps, Overlaps, Full };

    // Claims [first, first + count) for handler; a range may not overlap another or pass 0xffff.
    Status claim(u16 first, u32 count, IoPortHandler& handler);
    // Releases the range that starts at `first`; false if there is none.
    bool release(u16 first);
    // The handler owning every port of the access [port, port + size), or null: an access that
    // straddles two ranges, or a range and a hole, belongs to nobody.
    IoPortHandler* find(u16 port, u8 size) const {
        const u32 end = u32{port} + size;
        for (usize i = 0; i < count_; ++i) {
            if (port >= ranges_[i].first && end <= ranges_[i].end) return ranges_[i].handler;
        }
        return nullptr;
    }

private:
    struct Range {
        u32 first;
        u32 end;  // exclusive
        IoPortHandler* handler;
    };
    Range ranges_[kMaxRanges] = {};
    usize count_ = 0;
};

}  // namespace lamina
