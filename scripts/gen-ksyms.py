#!/usr/bin/env python3
"""Turns `llvm-nm -n -C --defined-only lamina_pass1.elf` (demangled) into the .ksyms section of the final image:
a sorted table of {address, name offset} and the names, so a panic can symbolize a backtrace
without debug info. Only text symbols in the higher half are kept."""
import sys

KERNEL_BASE = 0xffffffff80000000

symbols = []
for line in sys.stdin:
    parts = line.rstrip("\n").split(" ", 2)
    if len(parts) != 3:
        continue
    address, kind, name = parts
    if kind not in "tTwW":
        continue
    value = int(address, 16)
    if value < KERNEL_BASE:
        continue
    symbols.append((value, name))

symbols.sort()
out = ['    .section .ksyms, "a"', "    .balign 8", "    .global lamina_ksyms_count",
       "lamina_ksyms_count:", f"    .quad {len(symbols)}", "    .global lamina_ksyms", "lamina_ksyms:"]
offset = 0
for value, name in symbols:
    out.append(f"    .quad {value:#x}, {offset}")
    offset += len(name.encode()) + 1
out += ["    .global lamina_ksyms_names", "lamina_ksyms_names:"]
for _, name in symbols:
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    out.append(f'    .asciz "{escaped}"')
print("\n".join(out))
