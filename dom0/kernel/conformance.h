// `conformance`: Dom0 runs the conformance suite's test kernels (the boot images named test-*,
// tests/conformance) one at a time, as xtf-runner runs XTF's: create paused, follow the console,
// unpause, read the result line, destroy; then checks that the host got back every page, Dom0
// every event channel, and the other domains are as they were. One CONFORMANCE RESULT line per
// test and a CONFORMANCE SUMMARY line for scripts/conformance.py.
#pragma once

#include <dom0/shell/shell.h>

namespace lamina::dom0 {

int conformance_command(shell::Shell& shell, int argc, const char* const* argv);

}  // namespace lamina::dom0
