// `bench`: what Dom0 measures of the hypervisor, as LAMINA STAT lines for scripts/bench.py.
#pragma once

#include <dom0/shell/shell.h>

namespace lamina::dom0 {

int bench_command(shell::Shell& shell, int argc, const char* const* argv);

}  // namespace lamina::dom0
