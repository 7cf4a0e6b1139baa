#!/usr/bin/env python3
"""Boots a Lamina image in QEMU or Bochs, follows its serial log and decides pass or fail.

The image speaks a line protocol on COM1 (see README.md, "Result protocol"):

    LAMINA READY version=<v> cpus=<online>/<present> mem=<MiB> virt=<vmx|svm> stage2=<ept|npt> boot=<bios|uefi>
    ok <n> - <name>                      (self-test results, TAP-like)
    not ok <n> - <name> # <detail>
    1..<N>                               (the plan)
    LAMINA RESULT PASS|FAIL passed=<p> failed=<f>
    LAMINA PANIC ...                     (then registers and a backtrace)
    LAMINA STAT key=value ...            (figures for `lamina bench`)

Modes:
  ready        pass when the READY line appears and matches the machine; the emulator is then stopped.
  selftest     pass when READY matched, the result is PASS, no test failed, the plan matches the ok
               count, nothing panicked, and the emulator ended by itself (QEMU status 1; Bochs
               through its shutdown port).
  interactive  the serial console on this terminal (stdin reaches the serial port); no verdict.

Exit status: 0 pass, 1 fail, 2 harness error (missing emulator, ISO, firmware; bad arguments).
Python 3 standard library only.
"""

import argparse
import ctypes
import fcntl
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXIT_PASS, EXIT_FAIL, EXIT_HARNESS = 0, 1, 2

QEMU_EXIT_PASS = 1   # isa-debug-exit: status = (value << 1) | 1, value 0 = pass
QEMU_EXIT_FAIL = 3   # value 1 = fail
BOCHS_SHUTDOWN_MSG = "Shutdown port: shutdown requested"

ISO_CACHE_KEEP = 12  # ISOs kept in <build>/iso-cmdline/

BOCHS_MODELS = {"vmx": "corei7_skylake_x", "svm": "ryzen"}
VIRT_STAGE2 = {"vmx": "ept", "svm": "npt"}

OVMF_CANDIDATES = [  # (combined image for -bios) or (code, vars) for pflash
    ("/usr/share/ovmf/OVMF.fd", None),
    ("/usr/share/OVMF/OVMF.fd", None),
    ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
    ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
]
BOCHS_BIOS = ["/usr/share/bochs/BIOS-bochs-latest"]
BOCHS_VGABIOS = ["/usr/share/vgabios/vgabios.bin", "/usr/share/bochs/VGABIOS-lgpl-latest"]


class HarnessError(Exception):
    """Something is wrong with the harness or the host, not with the image (exit status 2)."""


# ------------------------------------------------------------------------------------------------
# The result protocol
# ------------------------------------------------------------------------------------------------

# ANSI/VT100 escape sequences (GRUB paints its menu with them on the serial port).
_ANSI = re.compile(rb"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|[@-Z\\-_])")
_READY = re.compile(r"^LAMINA READY\b(.*)$")
_RESULT = re.compile(r"^LAMINA RESULT (PASS|FAIL)\b(.*)$")
_STAT = re.compile(r"^LAMINA STAT\b(.*)$")
_PANIC = re.compile(r"^LAMINA PANIC\b")
_SYMBOLIZED_FRAME = re.compile(r"^\s+0x[0-9a-f]+ (?!\?)\S.*\+0x[0-9a-f]+$")
_OK = re.compile(r"^ok (\d+)\b")
_NOT_OK = re.compile(r"^not ok (\d+)\b")
_PLAN = re.compile(r"^1\.\.(\d+)\s*$")
_KV = re.compile(r"(\w+)=(\S*)")


def clean_line(raw):
    """bytes of one serial line (without its \\n) -> text without escapes, CRs or NULs."""
    raw = _ANSI.sub(b"", raw).replace(b"\x00", b"")
    # A CR inside a line returns the cursor: what follows overwrites the start. Keep the last part
    # that has text (GRUB ends lines with \r\n and may start one with \r).
    parts = [p for p in raw.split(b"\r") if p.strip()]
    text = parts[-1] if parts else b""
    return text.decode("utf-8", errors="replace").rstrip()


class Protocol:
    """Accumulates what the image said; knows nothing of emulators."""

    def __init__(self):
        self.lines = 0
        self.ready = None            # dict of the READY fields
        self.ready_line = None
        self.ready_count = 0
        self.ready_time = None
        self.oks = []                # test numbers
        self.not_oks = []            # whole lines
        self.plan = None
        self.result = None           # (PASS|FAIL, dict)
        self.result_line = None
        self.result_time = None
        self.panic_line = None
        self.panic_time = None
        self.symbolized_frames = 0   # backtrace lines with a symbol, after the panic line
        self.stats = {}
        self.unterminated = None     # a last line without its newline (the image stopped mid-line)

    def feed(self, line, now=0.0, terminated=True):
        self.lines += 1
        if not terminated:
            self.unterminated = line
        m = _READY.match(line)
        if m:
            self.ready_count += 1
            if self.ready is None:
                self.ready = dict(_KV.findall(m.group(1)))
                self.ready_line = line
                self.ready_time = now
            return
        m = _STAT.match(line)
        if m:
            self.stats.update(_KV.findall(m.group(1)))
            return
        m = _RESULT.match(line)
        if m:
            if self.result is None:
                self.result = (m.group(1), dict(_KV.findall(m.group(2))))
                self.result_line = line
                self.result_time = now
            return
        if self.panic_line is not None and _SYMBOLIZED_FRAME.match(line):
            self.symbolized_frames += 1
            return
        if _PANIC.match(line):
            if self.panic_line is None:
                self.panic_line = line
                self.panic_time = now
            return
        m = _NOT_OK.match(line)
        if m:
            self.not_oks.append(line)
            return
        m = _OK.match(line)
        if m:
            self.oks.append(int(m.group(1)))
            return
        m = _PLAN.match(line)
        if m and self.plan is None:
            self.plan = int(m.group(1))


class Expect:
    """What the READY line must say for this machine."""

    def __init__(self, cpus, vendor, firmware, mem, mem_min_pct):
        self.cpus = cpus                  # "N/N" or "online/present"
        self.vendor = vendor
        self.firmware = firmware
        self.mem = mem
        self.mem_min_pct = mem_min_pct

    def check(self, ready):
        """-> list of mismatches (empty when the READY line fits)."""
        bad = []
        if not ready.get("version"):
            bad.append("READY has no version=")
        if ready.get("cpus") != self.cpus:
            bad.append(f"cpus={ready.get('cpus')} (expected {self.cpus})")
        if ready.get("virt") != self.vendor:
            bad.append(f"virt={ready.get('virt')} (expected {self.vendor})")
        if ready.get("stage2") != VIRT_STAGE2[self.vendor]:
            bad.append(f"stage2={ready.get('stage2')} (expected {VIRT_STAGE2[self.vendor]})")
        if ready.get("boot") != self.firmware:
            bad.append(f"boot={ready.get('boot')} (expected {self.firmware})")
        if self.mem:
            try:
                mem = int(ready.get("mem", ""))
            except ValueError:
                bad.append(f"mem={ready.get('mem')} is not a number of MiB")
            else:
                low = self.mem * self.mem_min_pct // 100
                if not low <= mem <= self.mem:
                    bad.append(f"mem={mem} MiB (the machine has {self.mem} MiB; expected "
                               f"{low}..{self.mem})")
        return bad


class EmuEnd:
    """How the emulator ended."""

    def __init__(self, status=None, timed_out=False, stopped=False, message=None):
        self.status = status          # exit status, None while running / when killed by us
        self.timed_out = timed_out
        self.stopped = stopped        # we stopped it (ready mode, or after a panic)
        self.message = message        # what the emulator said on its way out (Bochs)


def _ended(emu, end, before):
    """'the emulator ended before ... (...)' with what is known of why."""
    how = f"status {end.status}" if end.status is not None else "unknown status"
    if emu == "qemu" and end.status == 0:
        how += ": the guest reset, triple-faulted or powered off (-no-reboot)"
    return f"the emulator ended before {before} ({how})" + (f": {end.message}" if end.message else "")


def decide(mode, emu, proto, expect, end, timeout=None, expect_panic=None):
    """-> (passed, reasons). Pure: the --self-test cases drive it with canned logs."""
    reasons = []
    if proto.ready is None:
        if proto.panic_line:
            reasons.append(f"panic before READY: {proto.panic_line}")
        elif end.timed_out:
            reasons.append(f"no READY line within {timeout} s (hang?)" if proto.lines else
                           f"no serial output within {timeout} s (emulator or firmware stuck?)")
        else:
            reasons.append(_ended(emu, end, "the READY line"))
        if proto.unterminated:
            reasons.append(f"the last line was cut off: {proto.unterminated!r}")
        return False, reasons
    reasons += expect.check(proto.ready)
    if proto.ready_count > 1:
        reasons.append(f"READY appeared {proto.ready_count} times (the machine reset and booted again)")
    if mode == "panic":
        return decide_panic(emu, proto, end, expect_panic, reasons)
    if proto.panic_line:
        reasons.append(f"panic: {proto.panic_line}")
    if mode == "ready":
        return not reasons, reasons

    # selftest
    for line in proto.not_oks:
        reasons.append(f"failed: {line}")
    if proto.result is None:
        if end.timed_out:
            reasons.append(f"no LAMINA RESULT line within {timeout} s "
                           f"(after {len(proto.oks)} ok, {len(proto.not_oks)} not ok)")
        elif not proto.panic_line:
            reasons.append(_ended(emu, end, "the LAMINA RESULT line"))
        if proto.unterminated:
            reasons.append(f"the last line was cut off: {proto.unterminated!r}")
        return False, reasons
    verdict, fields = proto.result
    if verdict != "PASS":
        reasons.append(f"result: {proto.result_line}")
    if proto.plan is None:
        reasons.append("no plan line (1..N)")
    elif proto.plan != len(proto.oks) + len(proto.not_oks):
        reasons.append(f"plan 1..{proto.plan} but {len(proto.oks)} ok + {len(proto.not_oks)} not ok lines")
    if fields.get("passed") != str(len(proto.oks)) or fields.get("failed") != str(len(proto.not_oks)):
        reasons.append(f"result counts passed={fields.get('passed')} failed={fields.get('failed')} "
                       f"disagree with {len(proto.oks)} ok / {len(proto.not_oks)} not ok lines")
    if len(set(proto.oks)) != len(proto.oks):
        reasons.append("a test number appears twice among the ok lines")
    # The image must end the emulator itself after the result line.
    if end.timed_out or end.stopped:
        reasons.append("the emulator did not exit by itself after the result line "
                       "(is emu_exit on the command line?)")
    elif emu == "qemu":
        if end.status not in (QEMU_EXIT_PASS, QEMU_EXIT_FAIL):
            reasons.append(f"QEMU ended with status {end.status}, not through isa-debug-exit (1 or 3)")
        elif (end.status == QEMU_EXIT_PASS) != (verdict == "PASS"):
            reasons.append(f"QEMU exit status {end.status} disagrees with RESULT {verdict}")
    elif emu == "bochs":
        if not end.message or BOCHS_SHUTDOWN_MSG not in end.message:
            reasons.append("Bochs did not end through the shutdown port 0x8900" +
                           (f": {end.message}" if end.message else ""))
    return not reasons, reasons


def decide_panic(emu, proto, end, expect_panic, reasons):
    """Mode panic (a deliberate crash= after READY): the diagnosis must be complete."""
    if proto.panic_line is None:
        reasons.append("no LAMINA PANIC line" + (f" within the timeout" if end.timed_out else ""))
        return False, reasons
    if expect_panic and not re.search(expect_panic, proto.panic_line):
        reasons.append(f"the panic line does not match {expect_panic!r}: {proto.panic_line}")
    if proto.symbolized_frames == 0:
        reasons.append("the panic printed no symbolized backtrace frame")
    if emu == "qemu" and end.status != QEMU_EXIT_FAIL:
        reasons.append(f"QEMU did not end through isa-debug-exit with the failure status "
                       f"({QEMU_EXIT_FAIL}) after the panic (status {end.status})")
    if emu == "bochs" and (not end.message or BOCHS_SHUTDOWN_MSG not in end.message):
        reasons.append("Bochs did not end through the shutdown port after the panic")
    return not reasons, reasons


# ------------------------------------------------------------------------------------------------
# Following a growing log
# ------------------------------------------------------------------------------------------------

class LogFollower:
    def __init__(self, path):
        self.path = Path(path)
        self.f = None
        self.buf = b""

    def poll(self):
        """-> complete new lines (bytes, without the newline)."""
        if self.f is None:
            try:
                self.f = open(self.path, "rb")
            except FileNotFoundError:
                return []
        data = self.f.read()
        if not data:
            return []
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        return lines

    def rest(self):
        """The unterminated tail, once the writer is gone."""
        lines = self.poll()
        tail, self.buf = self.buf, b""
        return lines, tail

    def close(self):
        if self.f:
            self.f.close()


# ------------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------------

def render_grub_cfg(cmdline, modules):
    """The project's grub.cfg template, booting its first entry at once with `cmdline` and the
    modules: (path in the ISO, module name) pairs, Dom0 first."""
    template = REPO / "boot" / "grub.cfg.in"
    try:
        text = template.read_text()
    except OSError as e:
        raise HarnessError(f"cannot read the GRUB template {template}: {e}")
    text = (text.replace("@LAMINA_GRUB_TIMEOUT@", "0").replace("@LAMINA_GRUB_DEFAULT@", "0")
                .replace("@LAMINA_EXTRA_CMDLINE@", cmdline)
                .replace("@LAMINA_MODULES@", "\n".join(f"    module2 {path} {name}" for path, name in modules)))
    left = re.findall(r"@\w+@", text)
    if left:
        raise HarnessError(f"{template} has placeholders the runner does not know: {', '.join(left)}")
    return text


def cmdline_iso(build_dir, elf, cmdline, dom0=None, guests_dir=None):
    """An ISO whose default entry boots `elf` with `cmdline`; cached in build/iso-cmdline/.
    Dom0 is `dom0` (default <build>/dom0.elf), then come the kernels of `guests_dir` (default
    <build>/guests), named after their files, then its configurations (*.cfg) by file name, as
    boot/CMakeLists.txt does."""
    elf = Path(elf)
    if not elf.is_file():
        raise HarnessError(f"{elf} does not exist (run `cmake --build {build_dir}` first)")
    if not shutil.which("grub-mkrescue"):
        raise HarnessError("grub-mkrescue is missing (./scripts/lamina deps)")
    dom0 = Path(dom0) if dom0 else Path(build_dir) / "dom0.elf"
    guests_dir = Path(guests_dir) if guests_dir else Path(build_dir) / "guests"
    if not guests_dir.is_dir() and guests_dir != Path(build_dir) / "guests":
        raise HarnessError(f"{guests_dir} is not a directory")
    guests = sorted(guests_dir.glob("*.elf"))
    configs = sorted(guests_dir.glob("*.cfg"))
    modules = ([("/boot/dom0.elf", "dom0")] if dom0.is_file() else []) + \
              [(f"/boot/guests/{g.name}", g.stem) for g in guests] + \
              [(f"/boot/guests/{c.name}", c.name) for c in configs]
    cfg = render_grub_cfg(cmdline, modules)
    # Where the modules come from is part of the key: two Dom0 kernels make the same grub.cfg.
    key = hashlib.sha256(f"{cfg}\n{dom0.resolve()}\n{guests_dir.resolve()}".encode()).hexdigest()[:12]
    out = Path(build_dir) / "iso-cmdline"
    out.mkdir(parents=True, exist_ok=True)
    iso = out / f"lamina-{key}.iso"
    with open(out / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel tests may want the same ISO
        inputs = [elf] + guests + configs + ([dom0] if dom0.is_file() else [])
        newest_input = max(p.stat().st_mtime for p in inputs)
        if iso.exists() and iso.stat().st_mtime >= newest_input:
            return iso
        tree = out / key
        (tree / "boot" / "grub").mkdir(parents=True, exist_ok=True)
        (tree / "boot" / "grub" / "grub.cfg").write_text(cfg)
        (tree / "cmdline.txt").write_text(cmdline + "\n")
        shutil.copyfile(elf, tree / "boot" / "lamina.elf")
        if dom0.is_file():
            shutil.copyfile(dom0, tree / "boot" / "dom0.elf")
        (tree / "boot" / "guests").mkdir(exist_ok=True)
        for guest in guests + configs:
            shutil.copyfile(guest, tree / "boot" / "guests" / guest.name)
        tmp = out / f"lamina-{key}.iso.tmp"
        r = subprocess.run(["grub-mkrescue", "-o", str(tmp), str(tree)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            raise HarnessError("grub-mkrescue failed:\n" + r.stdout.decode(errors="replace"))
        os.replace(tmp, iso)
    # ~20 MB each: keep the most recently made few.
    for old in sorted(out.glob("lamina-*.iso"), key=lambda p: p.stat().st_mtime)[:-ISO_CACHE_KEEP]:
        old.unlink(missing_ok=True)
        shutil.rmtree(out / old.stem[len("lamina-"):], ignore_errors=True)
    return iso


def find_ovmf():
    for code, varsf in OVMF_CANDIDATES:
        if os.path.isfile(code) and (varsf is None or os.path.isfile(varsf)):
            return code, varsf
    raise HarnessError("no OVMF firmware found (apt-get install ovmf); looked for " +
                       ", ".join(c for c, _ in OVMF_CANDIDATES))


def first_file(candidates, what, package):
    for c in candidates:
        if os.path.isfile(c):
            return c
    raise HarnessError(f"no {what} found (apt-get install {package}); looked for {', '.join(candidates)}")


# ------------------------------------------------------------------------------------------------
# Emulator command lines
# ------------------------------------------------------------------------------------------------

def qemu_command(a, iso, serial_args, files):
    exe = shutil.which("qemu-system-x86_64")
    if not exe:
        raise HarnessError("qemu-system-x86_64 is missing (./scripts/lamina deps)")
    accel = "tcg" + (",thread=single" if a.tcg_thread == "single" else "")
    cmd = [exe, "-machine", a.machine, "-accel", accel, "-cpu", "max",
           "-smp", str(a.smp), "-m", str(a.mem),
           "-display", "none", "-nic", "none", "-no-reboot",
           "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
           "-cdrom", str(iso), "-boot", "d"]
    if a.firmware == "uefi":
        code, varsf = find_ovmf()
        if varsf is None:
            cmd += ["-bios", code]
        else:
            vars_copy = files["ovmf_vars"]
            shutil.copyfile(varsf, vars_copy)
            cmd += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
                    "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}"]
    if a.icount:
        cmd += ["-icount", "shift=0,sleep=off"]
    cmd += serial_args
    cmd += a.qemu_arg
    return cmd


# Debian's Bochs has its debugger built in: it starts stopped, and it breaks into the debugger
# again at every triple fault (even one an SVM guest causes and the hypervisor intercepts), so
# the script says "continue" more than once.
BOCHS_DEBUGGER_SCRIPT = "c\n" * 64


def bochs_config(a, iso, com1):
    """The text of a bochsrc for this run."""
    bios = first_file(BOCHS_BIOS, "Bochs BIOS", "bochsbios")
    vgabios = first_file(BOCHS_VGABIOS, "VGA BIOS", "vgabios")
    lines = [
        f"# generated by scripts/emu_run.py",
        f"megs: {a.mem}",
        f"romimage: file={bios}",
        f"vgaromimage: file={vgabios}",
        f"cpu: model={BOCHS_MODELS[a.cpu_vendor]}, count={a.smp}, ips={a.bochs_ips}, "
        f"reset_on_triple_fault=0",
        # Emulated time follows the instruction count, not the host clock: runs are repeatable
        # and a busy host does not make timers fire early.
        "clock: sync=none, time0=946684800",
        "pci: enabled=1, chipset=i440fx",
        # Debian's Bochs has no `nogui` display: rfb without waiting for a client. A second Bochs
        # finds 5900 taken and listens on the next free port (up to 5949).
        'display_library: rfb, options="timeout=0"',
        "boot: cdrom",
        f"ata0-master: type=cdrom, path={iso}, status=inserted",
        com1,
        "sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy",  # ALSA crashes Bochs headless
        "speaker: enabled=0",
        "mouse: enabled=0",
        # Bochs 2.7 raises a CPU panic for any triple fault before it checks the SVM SHUTDOWN
        # intercept (cpu/exception.cc, then shutdown()): a fatal CPU panic would end the run
        # when a guest triple-faults under SVM. So CPU panics are reported; the CPU still
        # stops (shutdown state) when the triple fault is the host's, and the runner times out.
        "panic: action=fatal, " + ", ".join(f"cpu{i}=report" for i in range(a.smp)),
        "error: action=report",
        "info: action=report",
        "debug: action=ignore",
    ]
    return "\n".join(lines + a.bochs_opt) + "\n"


def bochs_command(config_path, rc_path):
    exe = shutil.which("bochs-bin") or shutil.which("bochs")
    if not exe:
        raise HarnessError("bochs is missing (./scripts/lamina deps)")
    # Debian's Bochs is built with its debugger, which stops before the first instruction and
    # reads commands: the rc file says `c` (continue), so stdin is never needed.
    return [exe, "-q", "-f", str(config_path), "-rc", str(rc_path)]


def bochs_exit_message(text):
    """What Bochs printed under 'Bochs is exiting with the following message:'."""
    m = re.search(r"Bochs is exiting with the following message:\s*\n(.*)", text)
    return m.group(1).strip() if m else None


# ------------------------------------------------------------------------------------------------
# Process handling
# ------------------------------------------------------------------------------------------------

def _child_setup():
    """Runs in the child: die with the runner (CTest may kill only its direct child)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def stop(proc):
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(3)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


class Interrupted(Exception):
    pass


def _on_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------

def log_files(a):
    log = Path(a.log) if a.log else Path(a.build_dir) / "logs" / (default_name(a) + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    stem = str(log)[:-len(".log")] if log.name.endswith(".log") else str(log)
    side = lambda suffix: Path(stem + suffix)  # noqa: E731 (names may contain dots)
    return {"serial": log,
            "emu": side(".emu.log"),          # the emulator's stdout/stderr
            "bochs_log": side(".bochs.log"),  # Bochs' own log
            "bochsrc": side(".bochsrc"),
            "rc": side(".bochs-rc"),
            "cmd": side(".cmd"),              # the emulator's command line
            "ovmf_vars": side(".ovmf-vars.fd")}


def default_name(a):
    return (f"{a.emu}-{a.cpu_vendor}-{a.firmware}-smp{a.smp}-mem{a.mem}-{a.mode}" +
            ("-icount" if a.icount else ""))


def resolve_iso(a):
    if a.iso:
        iso = Path(a.iso)
        if not iso.is_file():
            raise HarnessError(f"{iso} does not exist (run `cmake --build {a.build_dir}` first)")
        return iso.resolve()
    cmdline = a.cmdline.strip()
    if a.mode in ("selftest", "panic"):
        words = cmdline.split()
        wanted = ("selftest", "emu_exit") if a.mode == "selftest" else ("emu_exit",)
        cmdline = " ".join(words + [w for w in wanted if w not in words])
    elf = Path(a.elf) if a.elf else Path(a.build_dir) / "lamina.elf"
    return cmdline_iso(a.build_dir, elf, cmdline, a.dom0, a.guests).resolve()


def tail(path, n):
    try:
        data = Path(path).read_bytes()
    except OSError:
        return []
    lines = [clean_line(l) for l in data.split(b"\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines[-n:]


def run_checked(a):
    files = log_files(a)
    iso = resolve_iso(a)
    name = a.name or files["serial"].stem
    expect = Expect(a.expect_cpus or f"{a.smp}/{a.smp}", a.cpu_vendor, a.firmware, a.mem,
                    a.mem_min_pct)
    for key in ("serial", "emu", "bochs_log"):
        files[key].unlink(missing_ok=True)

    if a.emu == "qemu":
        cmd = qemu_command(a, iso, ["-serial", f"file:{files['serial']}", "-monitor", "none"], files)
    else:
        com1 = f"com1: enabled=1, mode=file, dev={files['serial']}"
        files["bochsrc"].write_text(bochs_config(a, iso, com1) + f"log: {files['bochs_log']}\n")
        files["rc"].write_text(BOCHS_DEBUGGER_SCRIPT)
        cmd = bochs_command(files["bochsrc"], files["rc"])
    files["cmd"].write_text(" ".join(cmd) + "\n")

    proto = Protocol()
    follower = LogFollower(files["serial"])
    start = time.monotonic()
    end = EmuEnd()
    emu_out = open(files["emu"], "wb")
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _on_signal)
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=emu_out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_child_setup)
    except OSError as e:
        raise HarnessError(f"cannot start {cmd[0]}: {e}")
    interrupted = None
    try:
        while True:
            now = time.monotonic() - start
            for raw in follower.poll():
                proto.feed(clean_line(raw), now)
            status = proc.poll()
            if status is not None:
                lines, rest = follower.rest()
                for raw in lines:
                    proto.feed(clean_line(raw), now)
                if rest.strip():
                    proto.feed(clean_line(rest), now, terminated=False)
                end.status = status
                break
            if a.mode == "ready" and proto.ready is not None and now - proto.ready_time >= a.ready_linger:
                end.stopped = True
                break
            if proto.ready is not None and proto.ready_count > 1:
                end.stopped = True  # it reset and booted again: stop before it loops
                break
            if proto.panic_line and now - proto.panic_time >= a.panic_linger:
                end.stopped = True  # give the backtrace a moment, then stop
                break
            if proto.result and now - proto.result_time >= a.exit_grace:
                end.stopped = True
                break
            if a.timeout and now >= a.timeout:
                end.timed_out = True
                break
            time.sleep(0.05)
    except Interrupted as e:
        interrupted = str(e)
    finally:
        stop(proc)
        emu_out.close()
        follower.close()
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_DFL)
    elapsed = time.monotonic() - start

    emu_text = files["emu"].read_text(errors="replace")
    if a.emu == "bochs":
        end.message = bochs_exit_message(emu_text)
    elif end.status is not None and emu_text.strip():
        end.message = " ".join(emu_text.strip().splitlines()[-3:])[:300]  # e.g. a usage error

    if interrupted:
        print(f"ERROR {name}: interrupted by {interrupted}\n  log: {files['serial']}")
        return EXIT_FAIL, proto

    passed, reasons = decide(a.mode, a.emu, proto, expect, end, a.timeout, a.expect_panic)
    report(a, name, files, proto, end, passed, reasons, elapsed)
    if a.stats_json:
        Path(a.stats_json).write_text(json.dumps({
            "name": name, "passed": passed, "ready": proto.ready, "stats": proto.stats,
            "ready_s": proto.ready_time, "elapsed_s": round(elapsed, 2),
            "log": str(files["serial"])}, indent=1) + "\n")
    return (EXIT_PASS if passed else EXIT_FAIL), proto


def report(a, name, files, proto, end, passed, reasons, elapsed):
    what = (f"{a.emu} {a.cpu_vendor}"
            f"{'/' + BOCHS_MODELS[a.cpu_vendor] if a.emu == 'bochs' else ''} {a.firmware} "
            f"smp={a.smp} mem={a.mem}M {a.mode}")
    timing = f"{elapsed:.1f} s"
    if proto.ready_time is not None:
        timing = f"READY at {proto.ready_time:.1f} s, {timing} in all"
    if passed:
        detail = ""
        if a.mode == "selftest":
            detail = f"; {len(proto.oks)}/{proto.plan} self-tests ok"
        if a.mode == "ready":
            detail = f"; {proto.ready_line}"
        print(f"PASS {name} ({what}){detail} ({timing})")
        print(f"  log: {files['serial']}")
        return
    print(f"FAIL {name} ({what}) ({timing})")
    for r in reasons:
        print(f"  - {r}")
    print(f"  log: {files['serial']}")
    print(f"  emulator output: {files['emu']}" +
          (f", Bochs log: {files['bochs_log']}" if a.emu == "bochs" else ""))
    print(f"  command: {files['cmd']}")
    lines = tail(files["serial"], a.tail)
    print(f"  --- last {len(lines)} lines of the serial log ---")
    for l in lines:
        print(f"  | {l}")
    if not proto.lines:
        lines = tail(files["emu"], 15)
        print(f"  --- last {len(lines)} lines of the emulator's output ---")
        for l in lines:
            print(f"  | {l}")


# ------------------------------------------------------------------------------------------------
# Interactive
# ------------------------------------------------------------------------------------------------

def run_interactive(a):
    files = log_files(a)
    iso = resolve_iso(a)
    files["serial"].unlink(missing_ok=True)
    emu_exit = "emu_exit" in a.cmdline.split()
    if a.emu == "qemu" and sys.stdin.isatty():
        # stdio carries the serial port and, behind Ctrl-A c, the monitor; Ctrl-A x quits.
        # signal=off: Ctrl-C goes to the guest. logfile= keeps a copy under build/logs.
        chardev = f"stdio,id=con,mux=on,signal=off,logfile={files['serial']}"
        # The monitor first: the last frontend on a mux has the focus, and that must be the UART.
        cmd = qemu_command(a, iso, ["-chardev", chardev, "-mon", "chardev=con,mode=readline",
                                    "-serial", "chardev:con"], files)
        print(f"[lamina] QEMU: serial console here; Ctrl-A x quits, Ctrl-A c is the monitor; "
              f"log: {files['serial']}", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the tty is raw; Ctrl-C goes to the guest
        proc = subprocess.Popen(cmd, preexec_fn=_child_setup)
        try:
            status = proc.wait(a.timeout or None)
        except subprocess.TimeoutExpired:
            stop(proc)
            print(f"\r\n[lamina] stopped after {a.timeout:g} s", file=sys.stderr)
            return 124
        if emu_exit and status in (QEMU_EXIT_PASS, QEMU_EXIT_FAIL):
            return EXIT_PASS if status == QEMU_EXIT_PASS else EXIT_FAIL
        return status
    return bridged_interactive(a, iso, files, emu_exit)


SHELL_PROMPT = b"lamina> "
DOM0_STARTING = re.compile(r"\bdom0: .* starting$")  # hypervisor/main.cpp, as it starts Dom0
NO_PROMPT_GRACE = 5.0  # seconds after READY


def bridged_interactive(a, iso, files, emu_exit):
    """The serial port as a TCP server on localhost, bridged here to stdin/stdout.

    Used for Bochs, and for QEMU when stdin is not a terminal: piped input is held back until the
    READY line, so that GRUB (which reads the serial port too) never sees it."""
    import termios
    import tty
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if a.emu == "qemu":
        chardev = f"socket,id=con,host=127.0.0.1,port={port},server=on,wait=on"
        cmd = qemu_command(a, iso, ["-chardev", chardev, "-serial", "chardev:con",
                                    "-monitor", "none"], files)
    else:
        com1 = f"com1: enabled=1, mode=socket-server, dev=127.0.0.1:{port}"
        files["bochsrc"].write_text(bochs_config(a, iso, com1) + f"log: {files['bochs_log']}\n")
        files["rc"].write_text(BOCHS_DEBUGGER_SCRIPT)
        cmd = bochs_command(files["bochsrc"], files["rc"])
    files["cmd"].write_text(" ".join(cmd) + "\n")
    emu_out = open(files["emu"], "wb")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=emu_out, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=_child_setup)
    deadline = time.monotonic() + 30
    conn = None
    while conn is None:
        try:
            conn = socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(proc)
                emu_out.close()
                print(f"[lamina] {a.emu} did not open its serial port; see {files['emu']}",
                      file=sys.stderr)
                for l in tail(files["emu"], 15):
                    print(f"  | {l}", file=sys.stderr)
                return EXIT_HARNESS
            time.sleep(0.2)
    stdin_fd = sys.stdin.fileno()
    is_tty = os.isatty(stdin_fd)
    saved = termios.tcgetattr(stdin_fd) if is_tty else None
    if is_tty:
        print(f"[lamina] {a.emu}: serial console here; Ctrl-A x quits; log: {files['serial']}",
              file=sys.stderr)
        tty.setraw(stdin_fd)
    log = open(files["serial"], "wb")
    out = sys.stdout.buffer
    stdin_open = True
    escape = False
    start = time.monotonic()
    status = None
    proto = Protocol()
    pending = b""
    # Piped input goes out a line per shell prompt, the way a person types after seeing it, so
    # that none arrives while nobody reads the port (its FIFO holds 16 bytes). A Dom0 decides when
    # it wants input, however long that takes; without one it all goes out a few seconds after
    # READY.
    queued, partial = [], b""
    prompts, sent, seen_tail = 0, 0, b""
    dom0_started = False
    drain_deadline = None
    ready_at = None
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    try:
        while True:
            # Typed input goes through at once; piped input is queued and paced (above).
            want_stdin = stdin_open
            fds = [conn] + ([stdin_fd] if want_stdin else [])
            r, _, _ = select.select(fds, [], [], 0.2)
            if conn in r:
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    break  # the emulator closed the port: it is on its way out
                out.write(data)
                out.flush()
                log.write(data)
                log.flush()
                window = seen_tail + data
                prompts += window.count(SHELL_PROMPT)
                seen_tail = window[-(len(SHELL_PROMPT) - 1):]
                pending += data
                *lines, pending = pending.split(b"\n")
                for l in lines:
                    line = clean_line(l)
                    proto.feed(line)
                    dom0_started = dom0_started or bool(DOM0_STARTING.search(line))
            if want_stdin and stdin_fd in r:
                data = os.read(stdin_fd, 4096)
                if not data:
                    stdin_open = False
                    if partial:
                        queued.append(partial)
                        partial = b""
                elif not is_tty:
                    *lines, partial = (partial + data).split(b"\n")
                    queued.extend(l + b"\n" for l in lines)
                else:
                    send = bytearray()
                    for byte in data:
                        if escape:
                            escape = False
                            if byte in b"xX":
                                raise Interrupted("Ctrl-A x")
                            send.append(byte)
                        elif byte == 1 and is_tty:
                            escape = True
                        else:
                            send.append(byte)
                    if send:
                        conn.sendall(bytes(send))
            if proto.ready is not None and ready_at is None:
                ready_at = time.monotonic()
            if queued and ready_at is not None:
                if not dom0_started and prompts == 0 and time.monotonic() - ready_at > NO_PROMPT_GRACE:
                    prompts = sent + len(queued)  # no shell: send it all
                while queued and sent < prompts and status is None:
                    conn.sendall(queued.pop(0))
                    sent += 1
            if status is None:
                status = proc.poll()
                # What it wrote just before it ended may still be in the socket: read on to the
                # port's end of file (above), or for a moment at most.
                drain_deadline = time.monotonic() + 2.0
            if status is not None and time.monotonic() > drain_deadline:
                break
            if a.timeout and time.monotonic() - start > a.timeout:
                print(f"\r\n[lamina] stopped after {a.timeout:g} s\r", file=sys.stderr)
                status = 124
                break
    except (Interrupted, KeyboardInterrupt):
        pass
    finally:
        if is_tty:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        if status is None:
            try:
                status = proc.wait(5)  # it closed the port on its way out: let it finish
            except subprocess.TimeoutExpired:
                pass
        stop(proc)
        conn.close()
        log.close()
        emu_out.close()
    msg = None
    if a.emu == "bochs":
        msg = bochs_exit_message(files["emu"].read_text(errors="replace"))
        if msg:
            print(f"\n[lamina] Bochs: {msg}", file=sys.stderr)
    if status == 124:
        return status
    if proto.result:
        return EXIT_PASS if proto.result[0] == "PASS" else EXIT_FAIL
    if a.emu == "qemu" and status in (QEMU_EXIT_PASS, QEMU_EXIT_FAIL):
        return EXIT_PASS if status == QEMU_EXIT_PASS else EXIT_FAIL
    if a.emu == "bochs" and msg and BOCHS_SHUTDOWN_MSG in msg:
        return EXIT_PASS
    return status if status is not None else 0


# ------------------------------------------------------------------------------------------------
# Self-test of the verdict logic (canned logs; no emulator)
# ------------------------------------------------------------------------------------------------

_GOOD = b"""\x1b[H\x1b[J\x1b[1;1H  Booting `Lamina self-test'\r
\r
\rlamina: log line\r
LAMINA READY version=0.1.0 cpus=2/2 mem=2047 virt=svm stage2=npt boot=bios\r
LAMINA STAT boot_tsc=123456 hv_ram_kib=4096\r
ok 1 - lib.format\r
ok 2 - mm.pmm\r
1..2\r
LAMINA RESULT PASS passed=2 failed=0\r
"""

_PANICKED = _GOOD.split(b"ok 1")[0] + b"""\
LAMINA PANIC cpu0: crash=panic asked for on the command line\r
backtrace:\r
  0xffffffff80214b04 void lamina::panic<>(char const*)+0x24\r
LAMINA RESULT FAIL passed=0 failed=1 reason=panic\r
"""


def _self_test():
    def run(log, mode="selftest", emu="qemu", end=None, cpus="2/2", firmware="bios", mem=2048,
            expect_panic="crash=panic"):
        p = Protocol()
        lines = log.split(b"\n")
        for l in lines[:-1]:
            p.feed(clean_line(l))
        if lines[-1].strip():
            p.feed(clean_line(lines[-1]), terminated=False)
        e = end or EmuEnd(status=QEMU_EXIT_PASS)
        return decide(mode, emu, p, Expect(cpus, "svm", firmware, mem, 90), e, 60, expect_panic)

    cases = [
        ("good self-test", run(_GOOD), True),
        ("good, no trailing newline", run(_GOOD.rstrip(b"\r\n")), True),
        ("good ready mode", run(_GOOD, mode="ready", end=EmuEnd(stopped=True)), True),
        ("bochs good", run(_GOOD, emu="bochs", end=EmuEnd(status=1, message="[UNMAP ] " + BOCHS_SHUTDOWN_MSG)), True),
        ("bochs ended otherwise", run(_GOOD, emu="bochs", end=EmuEnd(status=1, message="[CPU0 ] exception(): 3rd (13) exception with no resolution")), False),
        ("wrong cpus", run(_GOOD, cpus="4/4"), False),
        ("wrong firmware", run(_GOOD, firmware="uefi"), False),
        ("memory too small", run(_GOOD, mem=5120), False),
        ("not ok", run(_GOOD.replace(b"ok 2 - mm.pmm", b"not ok 2 - mm.pmm # leak")), False),
        ("result FAIL", run(_GOOD.replace(b"RESULT PASS", b"RESULT FAIL")), False),
        ("plan mismatch", run(_GOOD.replace(b"1..2", b"1..3")), False),
        ("no plan", run(_GOOD.replace(b"1..2\r\n", b"")), False),
        ("panic", run(_GOOD.replace(b"ok 2 - mm.pmm", b"LAMINA PANIC page fault")), False),
        ("no result", run(_GOOD.split(b"1..2")[0], end=EmuEnd(timed_out=True)), False),
        ("no READY", run(b"GRUB\r\nhello\r\n", end=EmuEnd(timed_out=True)), False),
        ("no output", run(b"", end=EmuEnd(timed_out=True)), False),
        ("qemu status 0", run(_GOOD, end=EmuEnd(status=0)), False),
        ("qemu status 3 with PASS", run(_GOOD, end=EmuEnd(status=QEMU_EXIT_FAIL)), False),
        ("did not exit", run(_GOOD, end=EmuEnd(stopped=True)), False),
        ("booted twice", run(_GOOD + _GOOD), False),
        ("'not ok' inside a log line", run(_GOOD.replace(b"lamina: log line", b"lamina: this is not ok 5 times")), True),
        ("cut READY line", run(b"LAMINA READY version=0.1.0 cpus=", end=EmuEnd(status=0)), False),
        ("expected panic", run(_PANICKED, mode="panic", end=EmuEnd(status=QEMU_EXIT_FAIL)), True),
        ("panic mode, no panic", run(_GOOD, mode="panic", end=EmuEnd(status=QEMU_EXIT_PASS)), False),
        ("panic mode, other panic", run(_PANICKED, mode="panic", end=EmuEnd(status=QEMU_EXIT_FAIL),
                                         expect_panic="page fault"), False),
        ("panic mode, unsymbolized backtrace",
         run(_PANICKED.replace(b"void lamina::panic<>(char const*)+0x24", b"?"), mode="panic",
             end=EmuEnd(status=QEMU_EXIT_FAIL)), False),
        ("panic mode, emulator killed", run(_PANICKED, mode="panic", end=EmuEnd(stopped=True)), False),
    ]
    bad = 0
    for label, (passed, reasons), want in cases:
        ok = passed == want
        bad += not ok
        print(f"{'ok' if ok else 'WRONG'}: {label}: {'pass' if passed else 'fail'}"
              + (f" ({'; '.join(reasons)})" if reasons else ""))
    assert clean_line(b"\x1b[1;1H  Booting\r") == "  Booting"
    print(f"{len(cases) - bad}/{len(cases)} verdicts as expected")
    return EXIT_PASS if bad == 0 else EXIT_FAIL


# ------------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--emu", choices=["qemu", "bochs"], default="qemu")
    p.add_argument("--cpu-vendor", choices=["svm", "vmx"],
                   help="svm (QEMU -cpu max; Bochs ryzen) or vmx (Bochs corei7_skylake_x); "
                        "default: svm for QEMU, vmx for Bochs")
    p.add_argument("--smp", type=int, default=1)
    p.add_argument("--mem", type=int, default=512, help="guest RAM in MiB (default 512)")
    p.add_argument("--firmware", choices=["bios", "uefi"], default="bios")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--iso", help="boot this ISO")
    src.add_argument("--cmdline", default=None,
                     help="boot build/lamina.elf with this hypervisor command line (an ISO is made "
                          "and cached in <build>/iso-cmdline/); selftest mode adds `selftest emu_exit`")
    p.add_argument("--elf", help="the image for --cmdline (default <build>/lamina.elf)")
    p.add_argument("--dom0", help="the kernel booted as Dom0 with --cmdline (default <build>/dom0.elf)")
    p.add_argument("--guests", help="the directory whose *.elf and *.cfg are the modules after Dom0, with "
                                    "--cmdline (default <build>/guests)")
    p.add_argument("--build-dir", default=str(REPO / "build"))
    p.add_argument("--mode", choices=["ready", "selftest", "panic", "interactive"], default="selftest")
    p.add_argument("--expect-panic", metavar="REGEX",
                   help="panic mode: the LAMINA PANIC line must match this")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds (default 120 for QEMU, 600 for Bochs; none when interactive)")
    p.add_argument("--log", help="serial log (default <build>/logs/<name>.log); the emulator's "
                                 "output and config go next to it")
    p.add_argument("--name", help="name in the verdict (default: the log's name)")
    p.add_argument("--expect-cpus", help="N (meaning N/N) or online/present (default smp/smp)")
    p.add_argument("--mem-min-pct", type=int, default=90,
                   help="READY's mem= must be at least this percentage of --mem (default 90)")
    p.add_argument("--icount", action="store_true",
                   help="QEMU -icount shift=0,sleep=off: the TSC counts instructions")
    p.add_argument("--machine", default="q35", help="QEMU machine (default q35)")
    p.add_argument("--tcg-thread", choices=["multi", "single"], default="multi",
                   help="QEMU TCG: one host thread per vCPU (multi) or round-robin (single)")
    p.add_argument("--bochs-ips", type=int, default=50_000_000,
                   help="Bochs instructions per emulated second (default 50M, near what this kind "
                        "of host emulates, so emulated time roughly keeps pace with the wall clock)")
    p.add_argument("--qemu-arg", action="append", default=[], help="extra QEMU argument (repeat)")
    p.add_argument("--bochs-opt", action="append", default=[], help="extra bochsrc line (repeat)")
    p.add_argument("--ready-linger", type=float, default=1.0,
                   help="ready mode: seconds to keep reading after READY (STAT lines, early panics)")
    p.add_argument("--panic-linger", type=float, default=3.0,
                   help="seconds to keep reading after a panic line (registers, backtrace)")
    p.add_argument("--exit-grace", type=float, default=15.0,
                   help="seconds the emulator has to end after the result line")
    p.add_argument("--tail", type=int, default=30, help="serial lines shown on failure")
    p.add_argument("--stats-json", help="write READY and STAT fields to this JSON file")
    p.add_argument("--self-test", action="store_true", help="check the verdict logic and exit")
    a = p.parse_args(argv)
    if a.cpu_vendor is None:
        a.cpu_vendor = "vmx" if a.emu == "bochs" else "svm"
    if a.emu == "qemu" and a.cpu_vendor == "vmx":
        p.error("QEMU TCG emulates AMD SVM only: use --emu bochs for vmx")
    if a.emu == "bochs" and a.firmware == "uefi":
        p.error("Bochs has no UEFI firmware here: use --emu qemu for uefi")
    if a.emu == "bochs" and a.icount:
        p.error("--icount is a QEMU option")
    if a.timeout is None:
        a.timeout = 0 if a.mode == "interactive" else (120 if a.emu == "qemu" else 600)
    if a.expect_cpus and "/" not in a.expect_cpus:
        a.expect_cpus = f"{a.expect_cpus}/{a.expect_cpus}"
    if not a.iso and a.cmdline is None:
        a.iso = str(Path(a.build_dir) / ("lamina-test.iso" if a.mode == "selftest" else "lamina.iso"))
    if a.cmdline is None:
        a.cmdline = ""
    return a


def main(argv):
    a = parse_args(argv)
    if a.self_test:
        return _self_test()
    try:
        if a.mode == "interactive":
            return run_interactive(a)
        status, _ = run_checked(a)
        return status
    except HarnessError as e:
        print(f"HARNESS ERROR: {e}", file=sys.stderr)
        return EXIT_HARNESS


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
