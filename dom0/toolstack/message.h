// One line for the user: why something was refused or failed. The toolstack fills it, the shell
// prints it.
#pragma once

#include <lamina/format.h>
#include <lamina/types.h>

namespace lamina::toolstack {

class Message {
public:
    static constexpr usize kCapacity = 160;

    template <typename... Args>
    void set(const char* fmt, const Args&... args) {
        format_to(text_, sizeof(text_), fmt, args...);
    }
    const char* text() const { return text_; }

private:
    char text_[kCapacity] = {};
};

}  // namespace lamina::toolstack
