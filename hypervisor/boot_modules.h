// The Multiboot2 modules the loader brought (test guests now; Dom0 and guest images later),
// found by the name on their module line.
#pragma once

#include <lamina/types.h>

namespace lamina::mb2 {
struct BootInfo;
}

namespace lamina::boot_modules {

void remember(const mb2::BootInfo& boot_info);
// The module whose command line is `name`; false if there is none.
bool find(const char* name, const u8** data, usize* size);

}  // namespace lamina::boot_modules
