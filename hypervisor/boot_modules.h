// The Multiboot2 modules the loader brought (Dom0, guest images and configurations), found by
// the name on their module line.
#pragma once

#include <lamina/types.h>

namespace lamina::mb2 {
struct BootInfo;
}

namespace lamina::boot_modules {

void remember(const mb2::BootInfo& boot_info);
// The module whose command line is `name`; false if there is none.
bool find(const char* name, const u8** data, usize* size);

struct BootModule {
    const char* name;  // its command line; "" when it has none
    const u8* data;
    usize size;
};
// The modules in the loader's order, at most `capacity`; returns how many there are in all.
usize list(BootModule* out, usize capacity);

}  // namespace lamina::boot_modules
