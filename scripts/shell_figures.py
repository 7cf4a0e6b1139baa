"""Figures read from a Dom0 shell transcript (tests/dom0_shell.py, scripts/bench.py): the CPU
shares `top` printed, and LAMINA STAT lines. Python 3 standard library only."""

import re

_TOP_ROW = re.compile(r"^(\S+)\s+(\d+)\s+(\S+)\s+(\d+\.\d)\s+(\d+)")


def top_shares(transcript):
    """-> one {domain name: CPU %} per `top` command in the transcript, from the last table it
    printed (the first is averaged since the host started)."""
    results = []
    for chunk in transcript.split("lamina> ")[1:]:
        if not chunk.startswith("top"):
            continue
        tables = chunk.split("Name ")[1:]
        if not tables:
            continue
        shares = {}
        for line in tables[-1].splitlines()[1:]:
            m = _TOP_ROW.match(line)
            if m:
                shares[m.group(1)] = float(m.group(4))
        results.append(shares)
    return results


def stats(transcript):
    """-> {key: value} of every LAMINA STAT line in the transcript."""
    found = {}
    for line in transcript.splitlines():
        if line.startswith("LAMINA STAT "):
            found.update(re.findall(r"(\w+)=(\S+)", line[len("LAMINA STAT "):]))
    return found
