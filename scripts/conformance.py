#!/usr/bin/env python3
"""The hypercall conformance suite's runner (docs/conformance.md), after Xen's xtf-runner.

For each vendor asked for it boots Lamina (scripts/emu_run.py) twice over:
  - with Dom0 and the unprivileged test kernels (<build>/conformance/test-*.elf) as its boot
    images, and has Dom0 run them (`conformance`: create paused, follow the console, unpause,
    read the result line, destroy, check the host's accounting);
  - once per control-domain test kernel (<build>/conformance-control/test-*.elf), booted in
    Dom0's place, reading its result line from the serial console.
Then prints a table and a summary, writes JUnit XML (<build>/conformance/junit-<vendor>.xml), and
exits with the worst result, as xtf-runner does: 0 SUCCESS, 3 SKIP, 4 ERROR, 5 FAILURE, 6 CRASH
(2: the runner itself could not run). Python 3 standard library only."""

import argparse
import fnmatch
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = ["SUCCESS", "SKIP", "ERROR", "FAILURE", "CRASH"]
EXIT_CODES = {"SUCCESS": 0, "SKIP": 3, "ERROR": 4, "FAILURE": 5, "CRASH": 6}
VENDORS = {
    "svm": ["--emu", "qemu", "--cpu-vendor", "svm"],
    "vmx": ["--emu", "bochs", "--cpu-vendor", "vmx"],
}
RESULT_LINE = re.compile(r"^CONFORMANCE RESULT name=(\S+) category=(\S+) result=(\S+) checks=(\d+) failed=(\d+) "
                         r"time_ms=(\d+)(?: detail=(.*))?$")
HEADER = re.compile(r"^--- Lamina conformance: (\S+) \((\w+)\)")
CHECKS = re.compile(r"^(\d+) checks, (\d+) failed$")
# Typed at a control kernel's prompt (control_host.cpp's console_read test): three Ctrl-A switch
# the input to the hypervisor's console and three switch it back; fewer go through to the kernel.
CONTROL_KERNEL_INPUT = "typed at the prompt: <\x01\x01> \x01\x01\x01c\x01\x01\x01end\n"


class Outcome:
    def __init__(self, name, vendor, category="unknown", result="CRASH", checks=0, failed=0, seconds=0.0,
                 detail="", output=""):
        self.name, self.vendor, self.category, self.result = name, vendor, category, result
        self.checks, self.failed, self.seconds, self.detail, self.output = checks, failed, seconds, detail, output


def worst(results):
    return max(results, key=RESULTS.index, default="SUCCESS")


def boot(a, vendor, log, stdin_text, extra):
    """Runs emu_run.py interactively; the serial log's text (the emulator's transcript)."""
    cmd = [sys.executable, str(REPO / "scripts" / "emu_run.py"), "--mode", "interactive", "--cmdline", "emu_exit",
           "--build-dir", str(a.build_dir), "--log", str(log), "--timeout", str(a.timeout), "--smp", str(a.smp),
           "--mem", "512"] + VENDORS[vendor] + extra
    run = subprocess.run(cmd, input=stdin_text.encode(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=a.timeout + 120)
    return run.stdout.decode(errors="replace").replace("\r", "")


def unprivileged_suite(a, vendor, kernels):
    """Dom0 runs the unprivileged kernels; one Outcome per kernel it reported."""
    command = f"conformance -t {a.test_timeout}"
    if a.kernel_args:
        command += f' -a "{a.kernel_args}"'
    if a.filter:
        command += f' "{a.filter}"'  # Dom0 chooses as chosen() does
    commands = command + "\npoweroff\n"
    log = a.build_dir / "logs" / f"conformance-{vendor}.log"
    transcript = boot(a, vendor, log, commands, ["--guests", str(a.build_dir / "conformance")])
    outcomes, output, seen = [], [], set()
    for line in transcript.splitlines():
        if line.startswith("CONFORMANCE BEGIN"):
            output = []
        elif line.startswith("  "):
            output.append(line[2:])
        m = RESULT_LINE.match(line)
        if m:
            name, category, result, checks, failed, ms, detail = m.groups()
            outcomes.append(Outcome(name, vendor, category, result, int(checks), int(failed), int(ms) / 1000,
                                    detail or "", "\n".join(output)))
            seen.add(name)
    for k in kernels:
        if k.stem not in seen:
            outcomes.append(Outcome(k.stem, vendor, detail=f"Dom0 reported no result (see {log})",
                                    output="\n".join(transcript.splitlines()[-30:])))
    return outcomes


def control_kernel(a, vendor, kernel):
    """Boots one control-domain kernel in Dom0's place; its Outcome from the serial console."""
    log = a.build_dir / "logs" / f"conformance-{vendor}-{kernel.stem}.log"
    start = time.monotonic()
    transcript = boot(a, vendor, log, CONTROL_KERNEL_INPUT, ["--dom0", str(kernel), "--guests", str(a.build_dir / "conformance")])
    outcome = Outcome(kernel.stem, vendor, seconds=time.monotonic() - start)
    lines = transcript.splitlines()
    results = [line[len("Test result: "):].strip() for line in lines if line.startswith("Test result: ")]
    for line in lines:
        if (m := HEADER.match(line)):
            outcome.category = m.group(2)
        if (m := CHECKS.match(line)):
            outcome.checks, outcome.failed = int(m.group(1)), int(m.group(2))
    outcome.output = "\n".join(lines)
    if len(results) == 1 and results[0] in RESULTS[:-1]:
        outcome.result = results[0]
    elif results:
        outcome.result, outcome.detail = "ERROR", f"{len(results)} result lines: {', '.join(results)}"
    else:
        outcome.detail = f"no result line (see {log})"
    if outcome.result != "CRASH" and "dom0 powered off" not in transcript:
        outcome.result, outcome.detail = "CRASH", "the kernel did not power the machine off after its result"
    return outcome


def write_junit(path, vendor, outcomes):
    suite = ET.Element("testsuite", name=f"lamina-conformance-{vendor}", tests=str(len(outcomes)),
                       failures=str(sum(o.result == "FAILURE" for o in outcomes)),
                       errors=str(sum(o.result in ("ERROR", "CRASH") for o in outcomes)),
                       skipped=str(sum(o.result == "SKIP" for o in outcomes)),
                       time=f"{sum(o.seconds for o in outcomes):.3f}")
    for o in outcomes:
        case = ET.SubElement(suite, "testcase", classname=f"conformance.{vendor}.{o.category}", name=o.name,
                             time=f"{o.seconds:.3f}")
        message = o.detail or f"{o.failed} of {o.checks} checks failed"
        if o.result == "FAILURE":
            ET.SubElement(case, "failure", message=message, type="FAILURE")
        elif o.result in ("ERROR", "CRASH"):
            ET.SubElement(case, "error", message=message, type=o.result)
        elif o.result == "SKIP":
            ET.SubElement(case, "skipped", message=message)
        ET.SubElement(case, "system-out").text = o.output
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def chosen(kernel, pattern):
    name = kernel.stem[len("test-"):]
    if not pattern:
        return True
    return fnmatch.fnmatchcase(name, pattern) if any(c in pattern for c in "*?[") else pattern in name


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    vendor = p.add_mutually_exclusive_group()
    vendor.add_argument("--svm", action="store_true", help="AMD SVM only (QEMU -cpu max)")
    vendor.add_argument("--vmx", action="store_true", help="Intel VMX only (Bochs corei7_skylake_x)")
    p.add_argument("--filter", help="test names (without test-): a glob, or a part of the name")
    p.add_argument("--build-dir", type=Path, default=REPO / "build")
    p.add_argument("--kernel-args", default="", help="key=value words for every test kernel (e.g. \"seed=7 calls=1000000\")")
    p.add_argument("--test-timeout", type=int, default=120, help="seconds one test kernel may run (default 120)")
    p.add_argument("--timeout", type=int, default=900, help="seconds one emulator run may take (default 900)")
    p.add_argument("--smp", type=int, default=1)
    a = p.parse_args()
    a.build_dir = a.build_dir.resolve()

    unprivileged = sorted(k for k in (a.build_dir / "conformance").glob("test-*.elf") if chosen(k, a.filter))
    control = sorted(k for k in (a.build_dir / "conformance-control").glob("test-*.elf") if chosen(k, a.filter))
    if not unprivileged and not control:
        print(f"conformance: no test kernel{' matches ' + a.filter if a.filter else ''} in {a.build_dir} "
              f"(build first: ./scripts/lamina build)")
        return 2
    vendors = ["svm"] if a.svm else ["vmx"] if a.vmx else ["svm", "vmx"]
    outcomes = []
    for v in vendors:
        found = []
        try:
            if unprivileged:
                found += unprivileged_suite(a, v, unprivileged)
            for k in control:
                found.append(control_kernel(a, v, k))
        except subprocess.TimeoutExpired:
            print(f"conformance: the emulator run for {v} did not end")
            return 2
        write_junit(a.build_dir / "conformance" / f"junit-{v}.xml", v, found)
        outcomes += found

    print(f"{'test':<24} {'vendor':<6} {'category':<11} {'result':<8} {'checks':>7} {'time':>8}  detail")
    for o in outcomes:
        print(f"{o.name:<24} {o.vendor:<6} {o.category:<11} {o.result:<8} {o.checks:>7} {o.seconds:>7.1f}s  {o.detail}")
    counts = {r: sum(o.result == r for o in outcomes) for r in RESULTS}
    overall = worst(o.result for o in outcomes)
    print(f"{len(outcomes)} tests on {'+'.join(vendors)}: " + ", ".join(f"{counts[r]} {r}" for r in RESULTS) +
          f" -> {overall}; JUnit XML in {a.build_dir / 'conformance'}")
    return EXIT_CODES[overall]


if __name__ == "__main__":
    sys.exit(main())
