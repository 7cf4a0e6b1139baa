#!/usr/bin/env python3
"""Runs Lamina's host libFuzzer harnesses (tests/fuzz) from a build directory.

Each harness fuzz_<name> runs for --seconds from a fresh working corpus, <work-dir>/<name>/corpus
(a copy of the seeds the build generated with make_seeds.py in <build-dir>/fuzz/seeds/<name>/,
which are also read from there and never written). Crash, timeout and out-of-memory inputs go to <work-dir>/artifacts/. Prints one
line per harness: executions, executions per second, coverage, corpus size and what it found.
Exits 0 when no harness found anything, 1 when one did, 2 when a harness could not run.

    tests/fuzz/run_host_fuzzers.py --build-dir build --seconds 600 --jobs 2 --filter 'acpi|elf'
"""

import argparse
import concurrent.futures
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# A single input running longer than this is a hang.
INPUT_TIMEOUT_SECONDS = 10
RSS_LIMIT_MB = 2048


@dataclass
class Outcome:
    name: str
    ran: bool = False
    exit_code: int = 0
    executions: int = 0
    executions_per_second: int = 0
    coverage: int = 0
    features: int = 0
    corpus_inputs: int = 0
    new_inputs: int = 0
    artifacts: list = field(default_factory=list)
    log: Path = None
    problem: str = ""

    @property
    def found_something(self):
        return self.ran and (self.exit_code != 0 or bool(self.artifacts))


def harness_names(seed_root, pattern):
    names = sorted(p.name for p in seed_root.iterdir() if p.is_dir())
    return [n for n in names if re.search(pattern, n)] if pattern else names


def last_int(regex, text):
    matches = re.findall(regex, text)
    return int(matches[-1]) if matches else 0


def run_harness(name, build_dir, work_dir, seconds):
    outcome = Outcome(name)
    binary = build_dir / "tests" / "fuzz" / f"fuzz_{name}"
    if not binary.is_file():
        outcome.problem = f"{binary} not found: build it first (cmake --build {build_dir})"
        return outcome
    seeds = build_dir / "fuzz" / "seeds" / name
    harness_dir = work_dir / name
    corpus = harness_dir / "corpus"
    artifacts = work_dir / "artifacts"
    shutil.rmtree(harness_dir, ignore_errors=True)
    shutil.copytree(seeds, corpus)
    artifacts.mkdir(parents=True, exist_ok=True)
    before = set(artifacts.glob(f"{name}-*"))
    seed_count = sum(1 for _ in corpus.iterdir())

    outcome.log = harness_dir / "fuzz.log"
    command = [
        str(binary),
        f"-max_total_time={seconds}",
        f"-timeout={INPUT_TIMEOUT_SECONDS}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-artifact_prefix={artifacts}/{name}-",
        "-print_final_stats=1",
        str(corpus),
        str(seeds),
    ]
    with open(outcome.log, "w") as log:
        log.write(" ".join(command) + "\n")
        log.flush()
        # Generous: libFuzzer stops itself after max_total_time, plus one input's timeout.
        try:
            completed = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                       timeout=seconds + 10 * INPUT_TIMEOUT_SECONDS + 60)
            outcome.exit_code = completed.returncode
        except subprocess.TimeoutExpired:
            outcome.exit_code = -1
            outcome.problem = "did not stop after its time"
    outcome.ran = True

    text = outcome.log.read_text(errors="replace")
    outcome.executions = last_int(r"stat::number_of_executed_units:\s*(\d+)", text)
    outcome.executions_per_second = last_int(r"stat::average_exec_per_sec:\s*(\d+)", text)
    outcome.coverage = last_int(r"\bcov: (\d+)", text)
    outcome.features = last_int(r"\bft: (\d+)", text)
    outcome.corpus_inputs = last_int(r"\bcorp: (\d+)/", text)
    outcome.new_inputs = sum(1 for _ in corpus.iterdir()) - seed_count
    outcome.artifacts = sorted(set(artifacts.glob(f"{name}-*")) - before)
    return outcome


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", type=Path, default=Path("build"), help="the CMake build directory (build)")
    parser.add_argument("--work-dir", type=Path, help="working corpora and artifacts (<build-dir>/fuzz)")
    parser.add_argument("--seconds", type=int, default=600, help="how long each harness runs (600)")
    parser.add_argument("--jobs", type=int, default=2, help="harnesses run at once (2)")
    parser.add_argument("--filter", default="", help="a regular expression the harness names must match")
    args = parser.parse_args()

    build_dir = args.build_dir.resolve()
    work_dir = (args.work_dir or build_dir / "fuzz").resolve()
    seed_root = build_dir / "fuzz" / "seeds"
    if not seed_root.is_dir():
        print(f"{seed_root} does not exist: build first (cmake --build {build_dir})", file=sys.stderr)
        return 2
    names = harness_names(seed_root, args.filter)
    if not names:
        print(f"no harness matches {args.filter!r}", file=sys.stderr)
        return 2
    print(f"fuzzing {', '.join(names)} for {args.seconds} s each, {args.jobs} at a time", flush=True)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_harness, n, build_dir, work_dir, args.seconds): n for n in names}
        for future in concurrent.futures.as_completed(futures):
            o = future.result()
            state = "not run" if not o.ran else "FOUND something" if o.found_something else "done"
            print(f"  {o.name}: {state}", flush=True)
        outcomes = [future.result() for future in futures]

    print(f"{'harness':<22}{'runs':>12}{'exec/s':>9}{'cov':>7}{'ft':>8}{'corpus':>8}{'new':>6}  result")
    for o in outcomes:
        if not o.ran:
            print(f"{o.name:<22}{'':>50}  not run: {o.problem}")
            continue
        if o.found_something:
            result = f"FOUND (exit {o.exit_code}{'; ' + o.problem if o.problem else ''}), log {o.log}"
        else:
            result = "ok"
        print(f"{o.name:<22}{o.executions:>12}{o.executions_per_second:>9}{o.coverage:>7}{o.features:>8}"
              f"{o.corpus_inputs:>8}{o.new_inputs:>6}  {result}")
        for artifact in o.artifacts:
            print(f"{'':<22}artifact {artifact}")
    if any(not o.ran for o in outcomes):
        return 2
    return 1 if any(o.found_something for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
