#!/usr/bin/env python3
"""A Dom0 shell scenario: boots the image with Dom0 (scripts/emu_run.py, interactive mode, the
commands piped in a line per prompt), then checks the transcript: every expectation must appear,
in order, and the machine must power off with success. Exit 0 on pass, 1 on fail, 2 on a harness
problem. Python 3 standard library only.

Scenarios (--scenario):
  basics   boot to the prompt; help, info, dmesg, errors for bad input, poweroff
  domains  the toolstack with the ticker guest (tests/guests/ticker): images, create (with
           overrides, -p), console, top, and each end action: destroy, preserve, restart
"""

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# name -> (commands typed, what the transcript must show, in order)
SCENARIOS = {
    "basics": (
        ["help", "help info", "info", "dmesg", "frobnicate", "pause", "pause no-such-domain",
         "'unterminated", "poweroff"],
        ["Lamina Dom0, hypercall ABI", "lamina> help",
         "  info ", "  poweroff ", "lamina> help info", "info",
         "lamina> info", "abi_version", "virtualization", "free_memory",
         "lamina> dmesg", "LAMINA READY",
         "lamina> frobnicate", 'unknown command "frobnicate"; type help',
         "lamina> pause", "usage",
         "lamina> pause no-such-domain", "no-such-domain",
         "lamina> 'unterminated", "unterminated",
         "lamina> poweroff", "Powering off.", "dom0 powered off"],
    ),
    # A line may hold several commands joined by CR (Enter to the shell): they run back to back,
    # without the prompt in between at which the harness would send the next line. A domain's
    # own shutdown is reported whenever it comes, so such a line waits for it with top.
    "domains": (
        ["images", "create nope",
         "create ticker.cfg cmdline=ticks=3\rtop -n 2 -d 1",
         "create -p ticker name=t2 memory=8 on_crash=preserve cmdline=crash\runpause t2\rtop -n 2 -d 1",
         "console -n t2", "destroy t2",
         "create ticker name=t3 memory=8", "top -n 1", "reboot t3", "top -n 2 -d 1\rconsole t3\r\x1d",
         "destroy t3", "list", "poweroff"],
        ["lamina> images", "ticker", "PVH ELF kernel", "ticker.cfg", "config",
         "lamina> create nope", 'create: nope: no boot image named "nope"',
         "lamina> create ticker.cfg cmdline=ticks=3", "created domain ticker (id ",
         "Exits/s", "(ticker) powered off; destroyed",
         "lamina> create -p ticker name=t2", "created domain t2 (id ", "), paused",
         "unpause t2", "Exits/s", "(t2) crashed; preserved",
         "lamina> console -n t2", "ticker: hello from domain", "tick 1", "ticker: crashing",
         "lamina> destroy t2",
         "lamina> create ticker name=t3 memory=8", "created domain t3 (id ",
         "lamina> top -n 1", "t3", "running",
         "lamina> reboot t3", "(t3) rebooted; restarted as domain ",
         "lamina> top -n 2 -d 1", "Exits/s", "Exits/s",
         "console t3", "[console of domain ", "ticker: hello from domain", "tick 1",
         "lamina> destroy t3", "lamina> list", "dom0",
         "lamina> poweroff", "Powering off.", "dom0 powered off"],
    ),
}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", choices=sorted(SCENARIOS), default="basics")
    p.add_argument("--build-dir", default=str(REPO / "build"))
    p.add_argument("--log", required=True)
    p.add_argument("--timeout", type=int, default=120)
    p.add_argument("runner_args", nargs="*", help="more emu_run.py arguments (after --)")
    a = p.parse_args()
    commands, expected = SCENARIOS[a.scenario]
    cmd = [sys.executable, str(REPO / "scripts" / "emu_run.py"), "--mode", "interactive", "--cmdline", "emu_exit",
           "--build-dir", a.build_dir, "--log", a.log, "--timeout", str(a.timeout)] + a.runner_args
    try:
        run = subprocess.run(cmd, input="".join(c + "\n" for c in commands).encode(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=a.timeout + 60)
    except subprocess.TimeoutExpired:
        print(f"FAIL {a.scenario}: the runner did not end within {a.timeout + 60} s")
        return 1
    transcript = run.stdout.decode(errors="replace").replace("\r", "")
    position = 0
    for want in expected:
        found = transcript.find(want, position)
        if found < 0:
            print(f"FAIL {a.scenario}: expected {want!r} after offset {position}; transcript tail:")
            for line in transcript[position:].splitlines()[-25:]:
                print(f"  | {line}")
            return 1
        position = found + len(want)
    if run.returncode != 0:
        print(f"FAIL {a.scenario}: the machine did not power off with success (runner status {run.returncode})")
        return 1
    print(f"PASS {a.scenario}: {len(commands)} commands, {len(expected)} expectations met; log: {a.log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
