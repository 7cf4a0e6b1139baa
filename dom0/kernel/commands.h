// The commands of Dom0's shell, which act through hypercalls, and the domain directory they find
// domains by name with.
#pragma once

#include <dom0/shell/command_line.h>

namespace lamina::dom0 {

struct CommandTable {
    const shell::Command* commands;
    usize count;
};

CommandTable command_table();
shell::DomainDirectory& domain_directory();

}  // namespace lamina::dom0
