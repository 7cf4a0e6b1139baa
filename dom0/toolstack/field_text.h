// Text from a fixed-size field someone else filled (the hypervisor, a domain): up to its NUL or
// the field's end, and anything a terminal would act on shown as '?'.
#pragma once

#include <lamina/string.h>
#include <lamina/types.h>

namespace lamina::toolstack {

template <usize N>
struct FieldText {
    char text[N + 1];

    explicit FieldText(const char (&field)[N]) {
        const usize length = str::length_bounded(field, N);
        for (usize i = 0; i < length; ++i) text[i] = field[i] >= 0x20 && field[i] < 0x7f ? field[i] : '?';
        text[length] = '\0';
    }
};

}  // namespace lamina::toolstack
