#include <lamina/bitmap.h>

namespace lamina {

void Bitmap::init(u64* storage, usize bits) {
    words_ = storage;
    bits_ = bits;
    for (usize i = 0; i < words_for(bits); ++i) words_[i] = 0;
}

void Bitmap::set_range(usize first, usize count) {
    usize end = first + count < first || first + count > bits_ ? bits_ : first + count;
    for (usize bit = first; bit < end;) {
        if (bit % 64 == 0 && end - bit >= 64) {
            words_[bit / 64] = ~u64{0};
            bit += 64;
        } else {
            set(bit++);
        }
    }
}

void Bitmap::clear_range(usize first, usize count) {
    usize end = first + count < first || first + count > bits_ ? bits_ : first + count;
    for (usize bit = first; bit < end;) {
        if (bit % 64 == 0 && end - bit >= 64) {
            words_[bit / 64] = 0;
            bit += 64;
        } else {
            clear(bit++);
        }
    }
}

usize Bitmap::count_set() const {
    usize n = 0;
    for (usize i = 0; i < words_for(bits_); ++i) n += static_cast<usize>(__builtin_popcountll(words_[i]));
    // Bits past the end are never set by the range operations, so no masking is needed.
    return n;
}

usize Bitmap::find_first_set(usize from) const {
    while (from < bits_) {
        u64 word = words_[from / 64] >> (from % 64);
        if (word) {
            usize bit = from + static_cast<usize>(__builtin_ctzll(word));
            return bit < bits_ ? bit : kNotFound;
        }
        from = (from / 64 + 1) * 64;
    }
    return kNotFound;
}

usize Bitmap::find_first_clear(usize from) const {
    while (from < bits_) {
        u64 word = ~words_[from / 64] >> (from % 64);
        if (word) {
            usize bit = from + static_cast<usize>(__builtin_ctzll(word));
            return bit < bits_ ? bit : kNotFound;
        }
        from = (from / 64 + 1) * 64;
    }
    return kNotFound;
}

usize Bitmap::find_clear_run(usize count, usize align, usize from, usize limit) const {
    if (count == 0 || !is_power_of_two(align)) return kNotFound;
    if (limit > bits_) limit = bits_;
    // Rounding a from near the top of the range up would wrap to 0 and search from the start.
    // Below limit (at most the size) it cannot: the storage of a bitmap that large won't fit.
    if (from >= limit) return kNotFound;
    usize start = static_cast<usize>(align_up(from, align));
    while (start < limit && limit - start >= count) {
        start = find_first_clear(start);
        if (start == kNotFound) return kNotFound;
        start = static_cast<usize>(align_up(start, align));
        if (start >= limit || limit - start < count) return kNotFound;
        usize set_bit = find_first_set(start);
        if (set_bit == kNotFound || set_bit >= start + count) return start;
        start = static_cast<usize>(align_up(set_bit + 1, align));
    }
    return kNotFound;
}

}  // namespace lamina
