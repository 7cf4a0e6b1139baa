// The C symbols the compiler may call on its own (struct copies, zeroing). Freestanding images
// only; host builds use the C library. rep movsb/stosb are fast on every CPU with ERMSB and
// correct on all others.
#include <lamina/types.h>

extern "C" {

void* memcpy(void* dst, const void* src, size_t n) {
    void* ret = dst;
    asm volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
    return ret;
}

// Eight bytes per store for the bulk: the same speed as REP STOSB on CPUs with fast strings,
// and an eighth of the iterations where each one counts (QEMU -icount counts every iteration,
// and zeroing a guest's RAM made up most of the boot-to-Dom0 figure).
void* memset(void* dst, int value, size_t n) {
    void* ret = dst;
    const size_t head = (8 - (reinterpret_cast<lamina::uptr>(dst) & 7)) & 7;
    if (n >= 16 && head < n) {
        size_t bytes = head;
        asm volatile("rep stosb" : "+D"(dst), "+c"(bytes) : "a"(value) : "memory");
        n -= head;
        size_t words = n / 8;
        const lamina::u64 pattern = static_cast<lamina::u8>(value) * 0x0101010101010101ull;
        asm volatile("rep stosq" : "+D"(dst), "+c"(words) : "a"(pattern) : "memory");
        n %= 8;
    }
    asm volatile("rep stosb" : "+D"(dst), "+c"(n) : "a"(value) : "memory");
    return ret;
}

void* memmove(void* dst, const void* src, size_t n) {
    auto* d = static_cast<unsigned char*>(dst);
    auto* s = static_cast<const unsigned char*>(src);
    if (d <= s || d >= s + n) return memcpy(dst, src, n);
    // Overlap with dst above src: copy backwards.
    d += n - 1;
    s += n - 1;
    asm volatile("std; rep movsb; cld" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    return dst;
}

int memcmp(const void* a, const void* b, size_t n) {
    auto* x = static_cast<const unsigned char*>(a);
    auto* y = static_cast<const unsigned char*>(b);
    for (size_t i = 0; i < n; ++i) {
        if (x[i] != y[i]) return x[i] - y[i];
    }
    return 0;
}

}  // extern "C"
