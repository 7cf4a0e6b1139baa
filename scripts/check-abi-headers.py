#!/usr/bin/env python3
"""Compiles the public ABI headers (lib/include/lamina/abi/) the ways their users will.

Each header alone, as C11 and as C++20, with -Wall -Wextra -Werror -pedantic -Wpadded (so a struct
with implicit padding fails); the document generator's assertions of every value, number and
offset it shows; and a guest that installs the hypercall page and calls every typed wrapper,
compiled to an object for bare metal, so the inline assembly's constraints are checked too.

    check-abi-headers.py --compiler clang++ --build-dir build/abi
"""

import argparse
import importlib.util
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
ABI_DIR = ROOT / "lib/include/lamina/abi"

WARNINGS = ["-Wall", "-Wextra", "-Werror", "-pedantic", "-Wpadded"]
TARGET = ["--target=x86_64-unknown-none-elf", "-ffreestanding", "-nostdlibinc"]
LANGUAGES = {
    "C11": ["-x", "c", "-std=c11"],
    "C++20": ["-x", "c++", "-std=c++20", "-fno-exceptions", "-fno-rtti"],
}


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_abi_doc", ROOT / "scripts/gen-abi-doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def guest_source(calls):
    lines = ["#include <lamina/abi/hypercall.h>", "", "LAMINA_HYPERCALL_PAGE_DEFINE();", "",
             "int64_t call_everything(void);", "int64_t call_everything(void) {",
             "    int64_t sum = lamina_detect();",
             "    lamina_hypercall_page_install((uint64_t)(uintptr_t)lamina_hypercall_page);"]
    for call in calls:
        arguments = ", ".join(str(i + 1) for i in range(len(call.arguments)))
        lines.append(f"    sum += lamina_hc_{call.name}({arguments});")
    lines += ["    sum += lamina_hypercall5(0x7f, 1, 2, 3, 4, 5);",
              "    return sum + lamina_errno_name(sum)[0];", "}", ""]
    return "\n".join(lines)


def compile_one(compiler, language, source, extra, what):
    command = [compiler, *LANGUAGES[language], *TARGET, *WARNINGS, f"-I{ROOT / 'lib/include'}", *extra, str(source)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        print(f"FAIL {what} as {language}:\n  {' '.join(command)}\n{result.stdout}{result.stderr}")
        return False
    print(f"ok   {what} as {language}")
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compiler", required=True, help="clang++ (it compiles C with -x c)")
    parser.add_argument("--build-dir", type=pathlib.Path, required=True)
    args = parser.parse_args()
    args.build_dir.mkdir(parents=True, exist_ok=True)

    generator = load_generator()
    try:
        _, abi = generator.render(ROOT)
    except generator.AbiError as error:
        print(f"check-abi-headers: {error}", file=sys.stderr)
        return 1
    _, _, calls, _ = abi

    ok = True
    headers = sorted(ABI_DIR.glob("*.h"))
    for header in headers:
        source = args.build_dir / f"include_{header.stem}.c"
        source.write_text(f"#include <lamina/abi/{header.name}>\n")
        for language in LANGUAGES:
            ok &= compile_one(args.compiler, language, source, ["-fsyntax-only"], header.name)

    layout = args.build_dir / "layout_check.c"
    layout.write_text(generator.layout_check(abi))
    guest = args.build_dir / "guest_calls.c"
    guest.write_text(guest_source(calls))
    for language in LANGUAGES:
        ok &= compile_one(args.compiler, language, layout, ["-fsyntax-only"], "the document's values and offsets")
        ok &= compile_one(args.compiler, language, guest, ["-O2", "-c", "-o", str(args.build_dir / "guest_calls.o")],
                          f"a guest calling all {len(calls)} wrappers")
    if not ok:
        return 1
    print(f"check-abi-headers: {len(headers)} headers, the layout and the guest entry compile as C11 and C++20")
    return 0


if __name__ == "__main__":
    sys.exit(main())
