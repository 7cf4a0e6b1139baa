#!/usr/bin/env python3
"""The conformance suite's build check: every hypercall of lib/include/lamina/abi/hypercalls.def
must have a HYPERCALL_TEST case in some test kernel (tests/conformance). Reads the case records
(section "conformance_cases", 24 bytes each, the hypercall number first: see
tests/conformance/framework/conformance.h) out of the kernels' ELF files, writes which kernel
covers which hypercall to --report, and fails the build naming each hypercall without a test.
Python 3 standard library only."""

import argparse
import re
import struct
import sys
from pathlib import Path

CASE_SIZE = 24
NOT_A_HYPERCALL = 0xFFFFFFFF
ENTRY = re.compile(r"^LAMINA_HYPERCALL\((0x[0-9a-fA-F]+),\s*(\w+),\s*(ANY|CONTROL),", re.M)


def table(path):
    """(number, name, caller) of every entry of the table."""
    entries = [(int(n, 16), name, caller) for n, name, caller in ENTRY.findall(Path(path).read_text())]
    if not entries:
        sys.exit(f"{path}: no LAMINA_HYPERCALL entries found")
    return entries


def section(path, wanted):
    """The bytes of ELF64 section `wanted` of `path`, or None."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        sys.exit(f"{path}: not a little-endian ELF64 file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i):
        return struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)

    names_offset = header(shstrndx)[4]
    for i in range(shnum):
        name, _, _, _, offset, size = header(i)[:6]
        end = data.index(b"\0", names_offset + name)
        if data[names_offset + name:end].decode() == wanted:
            return data[offset:offset + size]
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", required=True, help="hypercalls.def")
    p.add_argument("--report", required=True, help="the coverage report to write")
    p.add_argument("kernels", nargs="+", help="the test kernels (ELF)")
    a = p.parse_args()

    entries = table(a.table)
    covered = {}
    for kernel in a.kernels:
        records = section(kernel, "conformance_cases")
        if records is None or len(records) % CASE_SIZE:
            sys.exit(f"{kernel}: no conformance_cases section of {CASE_SIZE}-byte records")
        for offset in range(0, len(records), CASE_SIZE):
            number, = struct.unpack_from("<I", records, offset)
            if number != NOT_A_HYPERCALL:
                covered.setdefault(number, []).append(Path(kernel).stem)

    lines = [f"{'number':<8} {'hypercall':<26} {'caller':<8} tested by"]
    missing = []
    for number, name, caller in entries:
        kernels = covered.get(number, [])
        lines.append(f"{number:#06x}   {name:<26} {caller:<8} {', '.join(sorted(set(kernels))) or '-'}")
        if not kernels:
            missing.append(name)
    unknown = sorted(set(covered) - {n for n, _, _ in entries})
    lines.append(f"{len(entries) - len(missing)} of {len(entries)} hypercalls have a test")
    Path(a.report).write_text("\n".join(lines) + "\n")
    if unknown:
        sys.exit(f"conformance: cases name hypercalls the table does not have: {', '.join(map(hex, unknown))}")
    if missing:
        sys.exit(f"conformance: {len(missing)} hypercall(s) of {a.table} have no HYPERCALL_TEST in "
                 f"tests/conformance: {', '.join(missing)}")
    print(lines[-1])


if __name__ == "__main__":
    main()
