// A domain's port I/O map: which handler owns which ports. Exits for a port nobody claims read
// all ones and drop writes (ExitHandler). Hardware-independent (Catch2 tests).
#pragma once

#include <lamina/range_map.h>
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

// The port space is 64 Ki ports: a range may not run past the last one.
class IoPortMap : public RangeMap<IoPortHandler, 16> {
public:
    static constexpr u64 kPorts = 0x10000;

    RangeStatus claim(u16 first, u32 count, IoPortHandler& handler) {
        return RangeMap::claim(first, count, handler, kPorts);
    }
};

}  // namespace lamina
