"""`make profile`: where a CCR's CPU goes in the DGW and in the OCS (issue 16), into docs/profile-ccr.md.

The two-process path exactly as `make bench`'s e2e row runs it (`cellcelly ocs`, `cellcelly dgw`
on a provisioned embedded store, `cellcelly traffic` in a process of its own at a fixed offered
load), with py-spy recording each server meanwhile. py-spy runs `--nonblocking`: it reads the
stacks without stopping the process, 500 times a second; stopping it for each sample would add
pauses to the very latencies and CPU we measure, and an occasional torn stack (py-spy counts them
as errors) costs a statistical profile nothing. Not `--gil`: uvloop runs libuv (socket reads and
writes) with the GIL released, real CPU that would go missing (a quarter of the OCS's samples in a
trial); it does cost py-spy less (about a third of its CPU). Each process's CPU seconds over the run
(/proc/PID/stat) divided by the CCRs answered gives its µs per CCR, which the categories' shares
of the samples split (`stackprofile`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellcelly_dev.bench import (
    _compiled,
    _cpu_seconds,
    _start,
    _stop,
    ccrs_per_session,
    e2e_env,
    provisioned_data_dir,
    traffic_command,
)
from cellcelly_dev.devservers import free_port
from cellcelly_dev.stackprofile import mypyc_names, profile, render

log = logging.getLogger(__name__)

# the doc above this line is kept (hand-written), below it rewritten by each run
MARKER = "<!-- make profile (tools/cellcelly_dev/profile_ccr.py) rewrites the doc below this line. -->"
INTRO = """# Profile of one CCR (issue 16)

Where the CPU of a CCR goes in the DGW and in the OCS on the two-process Diameter path. Made again
with `make profile`, which rewrites everything below the marker line.
"""
BUILDS = {False: "pure Python", True: "compiled by mypyc (`make compile`, on PYTHONPATH)"}
RATE_HZ = 500  # py-spy's samples a second (--spy-rate): each costs it ~0.4 ms of CPU on this machine
NATIVE_RATE_HZ = 100  # with --native each sample stops the process: fewer (500 took 8.6 CPU-s in 10 s)
WARM_UP_S = 2.0  # a short load first: imports, caches and the store's first touches are not a CCR's


@dataclass
class Recording:
    """One server's run: its CPU seconds over the run, the raw stacks file and py-spy's counts."""

    cpu_s: float
    stacks: Path
    spy_summary: str


def py_spy() -> str:
    """The venv's py-spy (beside this interpreter), else one on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy not found: pip install py-spy (it is in the dev extras)")
    return found


def spy_command(pid: int, seconds: int, out: Path, rate_hz: int = RATE_HZ, native: bool = False) -> list[str]:
    """py-spy on one server. `native`: a compiled build's functions are C, seen only with
    `--native`, which py-spy cannot do without stopping the process for each sample."""
    mode = ["--native"] if native else ["--nonblocking"]
    return [
        py_spy(),
        "record",
        "--format",
        "raw",
        "--rate",
        str(rate_hz),
        *mode,
        "-d",
        str(seconds),
        "-p",
        str(pid),
        "-o",
        str(out),
    ]


def compiled_modules() -> dict[str, str] | None:
    """When this is a compiled build (`make compile`; the servers inherit PYTHONPATH), its compiled
    modules by their mypyc names (`stackprofile.mypyc_names`), else None."""
    import cellcelly

    if not _compiled():
        return None
    root = Path(cellcelly.__file__).parent
    return mypyc_names(
        ".".join(("cellcelly", *so.relative_to(root).parts[:-1], so.name.split(".")[0]))
        for so in root.rglob("*.so")
    )


def _children_cpu() -> float:
    """CPU seconds of this process's children reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def record(
    rate: float, seconds: int, subscribers: int, out_dir: Path, spy_rate: int = RATE_HZ, native: bool = False
) -> tuple[dict[str, Any], dict[str, Recording], dict[str, float]]:
    """The generator's JSON report, each server's recording of one run, and the CPU seconds the
    generator and the two py-spy took meanwhile (they share the two cores with the servers)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with provisioned_data_dir(subscribers) as data:
        dgw_port, wire, http = free_port(), free_port(), free_port()
        env = e2e_env(data, dgw_port, wire, http)
        ocs = _start(["ocs"], env, [wire, http])
        dgw = _start(["dgw"], env, [dgw_port])
        try:
            warm = traffic_command(dgw_port, rate, WARM_UP_S, subscribers)
            subprocess.run(warm, env=env, capture_output=True, check=True)
            pids = {"DGW": dgw.pid, "OCS": ocs.pid}
            build = "-compiled" if native else ""
            files = {who: out_dir / f"profile-{who.lower()}{build}.txt" for who in pids}
            for file in files.values():
                file.unlink(missing_ok=True)  # a failed py-spy must not leave the last run's stacks
            before, reaped = _cpu_seconds(pids), _children_cpu()
            generator = subprocess.Popen(
                traffic_command(dgw_port, rate, seconds, subscribers),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            spies = {
                who: subprocess.Popen(
                    spy_command(pid, seconds, files[who], spy_rate, native),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
                for who, pid in pids.items()
            }
            out, err = generator.communicate(timeout=seconds + 120)
            after, generated = _cpu_seconds(pids), _children_cpu()
            if generator.returncode != 0:
                raise RuntimeError(f"cellcelly traffic failed: {err.decode()[-2000:]}")
            said = {who: spy.communicate(timeout=60)[0].decode() for who, spy in spies.items()}
            others = {
                "the generator (with its start-up)": generated - reaped,
                "the two py-spy": _children_cpu() - generated,
            }
        finally:
            _stop(dgw, ocs)
    recordings = {
        who: Recording(after[who] - before[who], files[who], _spy_summary(said[who])) for who in pids
    }
    return json.loads(out), recordings, others


def _spy_summary(output: str) -> str:
    """py-spy's "Samples: N Errors: M", or its last line when it failed."""
    m = re.search(r"Samples: \d+ Errors: \d+", output)
    if m:
        return m[0]
    lines = output.strip().splitlines()
    return f"py-spy failed: {lines[-1] if lines else 'no output'}"


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def section(
    command: str,
    rate: float,
    report: dict[str, Any],
    recordings: dict[str, Recording],
    others: dict[str, float],
    loads: tuple[str, str],
    spy_rate: int = RATE_HZ,
    compiled: dict[str, str] | None = None,
) -> str:
    """The markdown of one run, below the marker, headed by its build (`BUILDS`)."""
    answers = report["answers"]
    lat = report["latency_ms"]
    native = compiled is not None
    mode = "--native" if native else "--nonblocking"
    lines = [
        f"## {BUILDS[native]}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"- command: `{command}`",
        f"- machine: {os.cpu_count()} CPUs; load average (1, 5, 15 min) {loads[0]} at the start, "
        f"{loads[1]} at the end",
        f"- offered: {rate:.0f} sessions/s (~{rate * ccrs_per_session():,.0f} CCR/s at "
        f"{ccrs_per_session()} CCRs a session) for {report['duration_s']:.1f} s; achieved "
        f"{report['ccr_per_s']:,.0f} CCR/s ({answers:,} answered, {report['timeouts']} timeouts, "
        f"{report['errors']} errors, {report['sessions_shed']} sessions shed), "
        f"p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms",
        f"- sampler: `py-spy record --format raw --rate {spy_rate} {mode} -d SECONDS -p PID` on each "
        "server (non-idle samples only)",
        "- CPU-s over the run beside the servers': "
        + ", ".join(f"{who} {cpu:.2f}" for who, cpu in others.items()),
    ]
    for who, rec in recordings.items():
        per_ccr = rec.cpu_s / answers * 1e6 if answers else None
        stacks = rec.stacks.read_text() if rec.stacks.exists() else ""
        cost = f"{per_ccr:.1f} µs of CPU per CCR" if per_ccr is not None else "no CCR answered"
        lines += [
            "",
            f"### {who} (`cellcelly {who.lower()}`): {cost} ({rec.cpu_s:.2f} CPU-s; {rec.spy_summary})",
            "",
            render(profile(stacks, compiled), per_ccr),
            "",
            f"Raw stacks: `{rec.stacks}` (flamegraph.pl or speedscope read them).",
        ]
    return "\n".join(lines) + "\n"


def write_doc(doc: Path, body: str) -> None:
    """Everything up to and with the marker line kept (or the default intro), and below it `body`
    beside the last run of the other build: the pure tree and the compiled one are the before and
    after of compiling, each rewritten only by a run of its own."""
    kept = doc.read_text() if doc.exists() else ""
    head, _, below = kept.partition(MARKER) if MARKER in kept else (INTRO + "\n", "", "")
    mine = next((label for label in BUILDS.values() if body.startswith(f"## {label},")), None)
    others = [
        section
        for section in re.split(r"(?m)^(?=## )", below)
        if section.startswith("## ") and mine is not None and not section.startswith(f"## {mine},")
    ]
    sections = sorted([body, *others], key=lambda text: not text.startswith(f"## {BUILDS[False]},"))
    doc.write_text(f"{head}{MARKER}\n\n" + "\n".join(section.rstrip("\n") + "\n" for section in sections))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cellcelly_dev.profile_ccr", description=__doc__)
    parser.add_argument("--rate", type=float, default=600.0, help="offered sessions/s (~4.2 CCRs a session)")
    parser.add_argument("--seconds", type=int, default=15, help="seconds of load recorded")
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument(
        "--spy-rate",
        type=int,
        default=None,
        help=f"py-spy's samples a second ({RATE_HZ}; {NATIVE_RATE_HZ} on a compiled build)",
    )
    parser.add_argument("--doc", type=Path, default=Path("docs/profile-ccr.md"))
    parser.add_argument("--stacks-dir", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    modules = compiled_modules()
    if args.spy_rate is None:
        args.spy_rate = RATE_HZ if modules is None else NATIVE_RATE_HZ
    path = "build/compiled:tools" if modules is not None else "tools"
    command = f"PYTHONPATH={path} .venv/bin/python -m cellcelly_dev.profile_ccr " + shlex.join(
        ["--rate", f"{args.rate:g}", "--seconds", str(args.seconds), "--spy-rate", str(args.spy_rate)]
    )
    start_load = _load()
    log.info(
        "profiling the two-process path at %g sessions/s for %d s (load %s)",
        args.rate,
        args.seconds,
        start_load,
    )
    report, recordings, others = record(
        args.rate, args.seconds, args.subscribers, args.stacks_dir, args.spy_rate, modules is not None
    )
    loads = (start_load, _load())
    body = section(command, args.rate, report, recordings, others, loads, args.spy_rate, modules)
    write_doc(args.doc, body)
    sys.stdout.write(body)
    log.info("written to %s", args.doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
