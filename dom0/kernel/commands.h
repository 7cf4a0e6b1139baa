// The commands of Dom0's shell, which act through hypercalls, the domain directory they find
// domains by name with, and the boot images they create domains from.
#pragma once

#include <dom0/shell/command_line.h>
#include <dom0/toolstack/images.h>

namespace lamina::dom0 {

struct CommandTable {
    const shell::Command* commands;
    usize count;
};

CommandTable command_table();
shell::DomainDirectory& domain_directory();
toolstack::ImageDirectory& boot_images();

}  // namespace lamina::dom0
