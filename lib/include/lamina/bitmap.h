// A bitmap over storage the caller owns (a static array, or frames carved at boot).
#pragma once

#include <lamina/types.h>

namespace lamina {

class Bitmap {
public:
    static constexpr usize kNotFound = ~usize{0};
    static constexpr usize words_for(usize bits) { return (bits + 63) / 64; }

    constexpr Bitmap() = default;
    // storage must hold words_for(bits) words; the bitmap starts all clear.
    void init(u64* storage, usize bits);

    usize size() const { return bits_; }
    bool test(usize bit) const { return (words_[bit / 64] >> (bit % 64)) & 1; }
    void set(usize bit) { words_[bit / 64] |= u64{1} << (bit % 64); }
    void clear(usize bit) { words_[bit / 64] &= ~(u64{1} << (bit % 64)); }
    // Range operations clamp to the bitmap's size.
    void set_range(usize first, usize count);
    void clear_range(usize first, usize count);
    usize count_set() const;

    // First set/clear bit at or after `from`, or kNotFound.
    usize find_first_set(usize from = 0) const;
    usize find_first_clear(usize from = 0) const;
    // First run of `count` clear bits starting at or after `from` whose start is a multiple of
    // `align` (a power of two), below `limit`; kNotFound if none.
    usize find_clear_run(usize count, usize align = 1, usize from = 0, usize limit = kNotFound) const;

private:
    u64* words_ = nullptr;
    usize bits_ = 0;
};

}  // namespace lamina
