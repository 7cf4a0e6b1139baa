#include <hypervisor/boot_modules.h>

#include <boot/multiboot2/multiboot2.h>
#include <hypervisor/memory.h>
#include <lamina/string.h>

namespace lamina::boot_modules {
namespace {
const mb2::BootInfo* info = nullptr;
}

void remember(const mb2::BootInfo& boot_info) { info = &boot_info; }

bool find(const char* name, const u8** data, usize* size) {
    if (!info) return false;
    for (const mb2::Module& module : info->modules()) {
        if (module.command_line && str::equal(module.command_line, name)) {
            // Modules lie in RAM the frame allocator never hands out, inside the physmap.
            *data = static_cast<const u8*>(memory::phys_to_virt(module.start));
            *size = module.size();
            return true;
        }
    }
    return false;
}

usize list(BootModule* out, usize capacity) {
    if (!info) return 0;
    usize count = 0;
    for (const mb2::Module& module : info->modules()) {
        if (count < capacity) {
            out[count] = {module.command_line ? module.command_line : "",
                          static_cast<const u8*>(memory::phys_to_virt(module.start)), module.size()};
        }
        ++count;
    }
    return count;
}

}  // namespace lamina::boot_modules
