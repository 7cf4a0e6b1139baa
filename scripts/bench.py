#!/usr/bin/env python3
"""`./scripts/lamina bench`: boots the image under QEMU with -icount shift=0,sleep=off (the TSC
then advances one tick per instruction, so the figures are deterministic) and prints a table from
the image's `LAMINA STAT key=value ...` lines plus what can be measured from lamina.elf itself.

To add a figure: make the image print it on a LAMINA STAT line and add a row to ROWS (any STAT key
without a row is listed under "other figures" anyway). To add a configuration, add to RUNS.
Python 3 standard library only.
"""

import argparse
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNNER = REPO / "scripts" / "emu_run.py"
sys.path.insert(0, str(REPO / "tests"))
from dom0_shell import fairness_scenario  # noqa: E402
from shell_figures import stats as shell_stats, top_shares  # noqa: E402

# name -> (emu_run.py arguments, hypervisor command line, Dom0 shell input). A run without input
# boots the normal entry (no self-test) and stops shortly after READY; `bench` on the command
# line runs the exit-cost guest right after READY. A run with input types it into Dom0's shell
# (Dom0's own `bench` command measures from there) and ends with its poweroff.
RUNS = {
    "1cpu": (["--emu", "qemu", "--smp", "1", "--mem", "512", "--icount"], "", None),
    "4cpu": (["--emu", "qemu", "--smp", "4", "--mem", "512", "--icount"], "", None),
    "1cpu-wall": (["--emu", "qemu", "--smp", "1", "--mem", "512"], "", None),
    "exits-svm": (["--emu", "qemu", "--smp", "1", "--mem", "256", "--icount"], "bench", None),
    "exits-vmx": (["--emu", "bochs", "--cpu-vendor", "vmx", "--smp", "1", "--mem", "256"], "bench", None),
    "exits-svm-bochs": (["--emu", "bochs", "--cpu-vendor", "svm", "--smp", "1", "--mem", "256"], "bench", None),
    "dom0-svm": (["--emu", "qemu", "--smp", "1", "--mem", "512", "--icount"], "emu_exit", "bench\npoweroff\n"),
    "dom0-vmx": (["--emu", "bochs", "--cpu-vendor", "vmx", "--smp", "1", "--mem", "512"], "emu_exit",
                 "bench\npoweroff\n"),
    # The credit scheduler's figures (tests/dom0_shell.py's fairness scenarios).
    "sched-2cpu": (["--emu", "qemu", "--smp", "2", "--mem", "512", "--icount"], "emu_exit",
                   "".join(c + "\n" for c in fairness_scenario(2)[0])),
    "sched-4cpu": (["--emu", "qemu", "--smp", "4", "--mem", "512", "--icount"], "emu_exit",
                   "".join(c + "\n" for c in fairness_scenario(4)[0])),
    "sched-2cpu-vmx": (["--emu", "bochs", "--cpu-vendor", "vmx", "--smp", "2", "--mem", "512"], "emu_exit",
                       "".join(c + "\n" for c in fairness_scenario(2)[0])),
}

# (label, unit, run, STAT key)
ROWS = [
    ("Instructions, Multiboot2 entry to READY, 1 CPU", "insns", "1cpu", "boot_tsc"),
    ("Instructions, Multiboot2 entry to READY, 4 CPUs", "insns", "4cpu", "boot_tsc"),
    ("Image size reported by the image", "bytes", "1cpu", "image_bytes"),
    ("RAM the hypervisor keeps at READY, 1 CPU", "KiB", "1cpu", "hv_ram_kib"),
    ("RAM the hypervisor keeps at READY, 4 CPUs", "KiB", "4cpu", "hv_ram_kib"),
    ("CPUID round trip, QEMU SVM (icount)", "insns", "exits-svm", "exit_cpuid"),
    ("I/O port exit round trip, QEMU SVM (icount)", "insns", "exits-svm", "exit_io"),
    ("MSR exit round trip, QEMU SVM (icount)", "insns", "exits-svm", "exit_msr"),
    ("VMMCALL round trip, QEMU SVM (icount)", "insns", "exits-svm", "exit_hypercall"),
    ("CPUID round trip, Bochs VMX", "ticks", "exits-vmx", "exit_cpuid"),
    ("I/O port exit round trip, Bochs VMX", "ticks", "exits-vmx", "exit_io"),
    ("MSR exit round trip, Bochs VMX", "ticks", "exits-vmx", "exit_msr"),
    ("VMCALL round trip, Bochs VMX", "ticks", "exits-vmx", "exit_hypercall"),
    ("CPUID round trip, Bochs SVM", "ticks", "exits-svm-bochs", "exit_cpuid"),
    ("I/O port exit round trip, Bochs SVM", "ticks", "exits-svm-bochs", "exit_io"),
    ("MSR exit round trip, Bochs SVM", "ticks", "exits-svm-bochs", "exit_msr"),
    ("VMMCALL round trip, Bochs SVM", "ticks", "exits-svm-bochs", "exit_hypercall"),
    ("Null hypercall (version) from Dom0, QEMU SVM (icount)", "insns", "dom0-svm", "dom0_null_hypercall"),
    ("Null hypercall (version) from Dom0, Bochs VMX", "ticks", "dom0-vmx", "dom0_null_hypercall"),
    ("create to the guest's first console byte in Dom0, QEMU SVM (icount)", "insns", "dom0-svm",
     "create_to_output_tsc"),
    ("create to the guest's first console byte in Dom0, Bochs VMX", "ticks", "dom0-vmx", "create_to_output_tsc"),
    ("Hypervisor memory per extra domain beyond its RAM, QEMU SVM", "KiB", "dom0-svm", "domain_overhead_kib"),
    ("Hypervisor memory per extra domain beyond its RAM, Bochs VMX", "KiB", "dom0-vmx", "domain_overhead_kib"),
]
# Three 2-vCPU (4-vCPU on 4 CPUs) CPU-bound domains, weights 256/512/1024 (ideal 2/7, 4/7, 8/7
# of a CPU on 2 CPUs), then one capped at 25 beside a hog, then Dom0's wake-up latency.
for run, clock in (("sched-2cpu", "QEMU SVM 2 CPUs (icount)"), ("sched-4cpu", "QEMU SVM 4 CPUs (icount)"),
                   ("sched-2cpu-vmx", "Bochs VMX 2 CPUs")):
    ROWS += [(f"CPU share, weight {w}, {clock}", "% of a CPU", run, f"top0_w{w}_pct") for w in (256, 512, 1024)]
    ROWS += [(f"CPU share, cap 25, {clock}", "% of a CPU", run, "top1_capped_pct"),
             (f"Dom0 wake-up latency beside CPU hogs, max, {clock}", "us", run, "wake_latency_max_us"),
             (f"Dom0 wake-up latency beside CPU hogs, mean, {clock}", "us", run, "wake_latency_mean_us")]


def elf_load_bytes(path):
    """-> (file bytes, memory bytes) of the PT_LOAD segments of an ELF64 file."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError(f"{path} is not an ELF64 file")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    filesz = memsz = 0
    for i in range(phnum):
        p_type, _, _, _, _, p_filesz, p_memsz, _ = struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)
        if p_type == 1:  # PT_LOAD
            filesz += p_filesz
            memsz += p_memsz
    return filesz, memsz


def boot(name, args, cmdline, shell_input, build_dir, logs, timeout):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        mode = ["--mode", "interactive"] if shell_input else ["--mode", "ready", "--ready-linger", "2"]
        cmd = [sys.executable, str(RUNNER), *args, *mode, "--cmdline", cmdline,
               "--build-dir", str(build_dir), "--log", str(logs / f"bench-{name}.log"),
               "--timeout", str(timeout), "--stats-json", out.name]
        r = subprocess.run(cmd, input=shell_input or "", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, errors="replace")
        if r.returncode != 0:
            print(r.stdout, end="", file=sys.stderr)
            return None
        if not shell_input:
            return json.loads(Path(out.name).read_text())
        # The interactive runner gives no verdict file: the figures are in the transcript, and
        # so are top's CPU shares.
        transcript = r.stdout.replace("\r", "")
        stats = shell_stats(transcript)
        for index, shares in enumerate(top_shares(transcript)):
            for domain, share in shares.items():
                stats[f"top{index}_{domain}_pct"] = share
        return {"stats": stats, "ready": None}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-dir", default=str(REPO / "build"))
    p.add_argument("--timeout", type=int, default=300)
    p.add_argument("--json", help="also write the figures to this file")
    a = p.parse_args()
    build = Path(a.build_dir)
    logs = build / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    results, failed = {}, []
    for name, (args, cmdline, shell_input) in RUNS.items():
        print(f"[bench] booting {name}: {' '.join(args)} -- {cmdline}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        res = boot(name, args, cmdline, shell_input, build, logs, a.timeout)
        if res is None:
            failed.append(name)
        results[name] = res or {"stats": {}, "ready": None}

    table = []  # (label, value, unit, source)
    for label, unit, run, key in ROWS:
        value = results[run]["stats"].get(key)
        table.append((label, value if value is not None else "n/a", unit,
                      f"LAMINA STAT {key}= ({run})"))
    # Dom0 prints the TSC at its first prompt; the hypervisor, the TSC at its entry.
    for run, cpus in (("1cpu", "1 CPU"), ("4cpu", "4 CPUs")):
        stats = results[run]["stats"]
        prompt, entry = stats.get("dom0_prompt_tsc"), stats.get("entry_tsc")
        value = int(prompt) - int(entry) if prompt is not None and entry is not None else "n/a"
        table.append((f"Instructions, Multiboot2 entry to the lamina> prompt, {cpus}", value, "insns",
                      f"LAMINA STAT dom0_prompt_tsc= - entry_tsc= ({run})"))
    # The same without -icount: the TSC keeps the host's time, so this is wall time.
    stats = results["1cpu-wall"]["stats"]
    if all(stats.get(k) is not None for k in ("dom0_prompt_tsc", "entry_tsc", "tsc_khz")):
        ms = (int(stats["dom0_prompt_tsc"]) - int(stats["entry_tsc"])) / int(stats["tsc_khz"])
        table.append(("Wall time, Multiboot2 entry to the lamina> prompt, QEMU TCG, 1 CPU", f"{ms:.1f}", "ms",
                      "(dom0_prompt_tsc - entry_tsc) / tsc_khz (1cpu-wall)"))
    else:
        table.append(("Wall time, Multiboot2 entry to the lamina> prompt", "n/a", "ms", "1cpu-wall"))
    try:
        filesz, memsz = elf_load_bytes(build / "lamina.elf")
        table.append(("Image size, loadable segments of lamina.elf (file)", filesz, "bytes", "ELF PT_LOAD p_filesz"))
        table.append(("Image size, loadable segments of lamina.elf (memory)", memsz, "bytes", "ELF PT_LOAD p_memsz"))
    except (OSError, ValueError) as e:
        table.append(("Image size, loadable segments of lamina.elf", "n/a", "", str(e)))
    known = {key for _, _, _, key in ROWS} | {"dom0_prompt_tsc", "entry_tsc", "tsc_khz"}
    for run, res in results.items():
        for key, value in sorted(res["stats"].items()):
            if key not in known:
                table.append((f"other: {key} ({run})", value, "", f"LAMINA STAT {key}= ({run})"))

    # The credit scheduler's figures from its discrete-event simulator (tests/sched_bench).
    sched = build / "tests" / "sched_bench" / "sched_figures"
    if sched.exists():
        out = subprocess.run([str(sched)], capture_output=True, text=True, timeout=a.timeout)
        for entry in out.stdout.splitlines():
            if entry.startswith("LAMINA STAT "):
                key, _, value = entry[len("LAMINA STAT "):].partition("=")
                table.append((f"scheduler simulator: {key}", value, "", "tests/sched_bench/sched_figures"))
    else:
        table.append(("scheduler simulator", "n/a", "", f"{sched} not built"))

    w = [max(len(str(row[i])) for row in table + [("Figure", "Value", "Unit", "Source")]) for i in range(4)]
    line = f"{'Figure':<{w[0]}}  {'Value':>{w[1]}}  {'Unit':<{w[2]}}  Source"
    print(line)
    print("-" * len(line.rstrip()) + "-" * 10)
    for label, value, unit, source in table:
        print(f"{label:<{w[0]}}  {str(value):>{w[1]}}  {unit:<{w[2]}}  {source}")
    for run, res in results.items():
        if res.get("ready"):
            print(f"[{run}] {' '.join(f'{k}={v}' for k, v in res['ready'].items())}; "
                  f"log: {res['log']}")
    print("QEMU -icount shift=0,sleep=off: the TSC advances one tick per guest instruction (busy-waits\n"
          "count too). With 4 CPUs the vCPUs run round-robin and their instructions add up; the\n"
          "4-CPU instruction count varies by about 0.1% from run to run, the 1-CPU one not at all.")
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": table, "runs": results}, indent=1) + "\n")
    if failed:
        print(f"[bench] did not reach READY: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
