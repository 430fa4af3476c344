"""Profile the tagstream worker while it drains a backlog, and print where its CPU time goes.

    python -m benchmarks.profile_worker [--events 50000] [--customers 100000] [--tool py-spy|pyinstrument|perf]
                                        [--native] [--rules PATH]

py-spy (default) attaches to a real ``python -m streams.cli worker`` subprocess and samples it
at 100 Hz without slowing it much; the speedscope profile lands in benchmarks/results/ (open it
on https://www.speedscope.app). ``--native`` samples the C frames too: the compiled engine's
functions (without it their time lands on whichever Python frame py-spy last saw, e.g.
``tag_record``), orjson, the garbage collector, system calls. Needs ptrace (root, or CAP_SYS_PTRACE in a container).
``--tool pyinstrument`` runs the same worker under ``python -m pyinstrument`` instead (no
ptrace needed) and saves its text and HTML reports. ``--tool perf`` samples the worker with Linux
``perf record`` (the cpu-clock event at 997 Hz, no call graphs) and prints its own time per shared
object and per C symbol: the compiled engine's functions, libpython, orjson, the kernel. Python
frames are all ``_PyEval_EvalFrameDefault`` there; read it next to a py-spy profile. Compare two
rule sets with two runs (``--rules``).

Prints the top 25 functions by own time (samples whose innermost frame is that function), then
own time per package, then the top 25 by inclusive time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from .common import (
    REFERENCE_RULES,
    RESULTS,
    Load,
    Proc,
    free_port,
    log,
    produce_backlog,
    tagstream_env,
    watch_drain,
)


def _package(file: str) -> str:
    if "site-packages/" in file:
        return file.split("site-packages/", 1)[1].split("/", 1)[0]
    for top in ("streams", "tag_rules", "schemas", "benchmarks"):
        if f"/{top}/" in file:
            return top
    if "/lib/python3" in file:
        return "stdlib"
    return file or "?"


def summarize_speedscope(path: Path, top: int = 25) -> str:
    """Own and inclusive time per function, over every thread of a py-spy speedscope file."""
    doc = json.loads(path.read_text())
    frames = doc["shared"]["frames"]
    own: Counter[int] = Counter()
    incl: Counter[int] = Counter()
    total = 0.0
    n_samples = 0
    threads = []
    for prof in doc["profiles"]:
        threads.append(f"{prof.get('name', '?')}: {sum(prof['weights']):.1f}s")
        n_samples += len(prof["samples"])
        for stack, w in zip(prof["samples"], prof["weights"], strict=True):
            if not stack:
                continue
            total += w
            own[stack[-1]] += w
            for f in set(stack):
                incl[f] += w

    def label(i: int) -> str:
        f = frames[i]
        file = f.get("file") or ""
        short = file.split("site-packages/", 1)[-1] if "site-packages/" in file else file.split("/main/", 1)[-1]
        return f"{f['name']}  ({short})"

    lines = [f"{n_samples:,} samples at 100 Hz = {total:,.1f} thread-seconds of non-idle stacks "
             "(py-spy counts a thread blocked in epoll as idle only some of the time)",
             "per thread: " + "; ".join(threads), "",
             f"top {top} by own time:", f"{'own %':>7} {'incl %':>7}  function (file)"]
    for i, w in own.most_common(top):
        lines.append(f"{100 * w / total:>6.1f}% {100 * incl[i] / total:>6.1f}%  {label(i)}")
    pk: Counter[str] = Counter()
    for i, w in own.items():
        pk[_package(frames[i].get("file") or "")] += w
    lines += ["", "own time per package:"]
    lines += [f"{100 * w / total:>6.1f}%  {name}" for name, w in pk.most_common(12)]
    lines += ["", f"top {top} by inclusive time:"]
    lines += [f"{100 * w / total:>6.1f}%  {label(i)}" for i, w in incl.most_common(top)]
    return "\n".join(lines)


def start_perf(pid: int, out: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """``perf record`` attached to ``pid`` (every thread) until SIGINT."""
    with log_path.open("wb") as err:
        return subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "997", "-p", str(pid), "-o", str(out)],
                                stdout=subprocess.DEVNULL, stderr=err)


def summarize_perf(path: Path, top: int = 40) -> str:
    """Own time per shared object, then per symbol, from ``perf report``."""
    def report(sort: str) -> str:
        return subprocess.run(["perf", "report", "-i", str(path), "--stdio", "--no-children", "--sort", sort,
                               "--percent-limit", "0.3"], capture_output=True, text=True, check=True).stdout

    def rows(text: str, n: int) -> list[str]:
        return [line for line in text.splitlines() if line.strip() and not line.startswith("#")][:n]

    return "\n".join(["own time per shared object:", *rows(report("dso"), 15), "",
                      f"top {top} symbols by own time:", *rows(report("dso,sym"), top)])


def start_py_spy(pid: int, out: Path, log_path: Path, native: bool = False) -> subprocess.Popen[bytes]:
    """``py-spy record`` attached to ``pid``: 100 Hz, one frame per function, speedscope format;
    ``native`` adds the C frames (the compiled engine's functions, orjson, the garbage collector)."""
    with log_path.open("wb") as err:
        return subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(pid),
                                 "-r", "100", "--nolineno", "-f", "speedscope", "-o", str(out),
                                 *(["--native"] if native else [])],
                                stdout=subprocess.DEVNULL, stderr=err)


async def amain(args: argparse.Namespace) -> int:
    run_id = f"prof-{time.strftime('%Y%m%d-%H%M%S')}"
    load = Load(run_id, args.bootstrap, args.partitions)
    out_dir = RESULTS / run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    log(f"profile run {run_id}: {args.events:,} events, {args.customers:,} customers, tool {args.tool}")
    await produce_backlog(load, events=args.events, customers=args.customers, seed=args.seed)
    app_id = f"{run_id}-c"
    port = free_port()
    env = tagstream_env(load, app_id, port, out_dir / "data", Path(args.rules), args.redis_url)
    if args.tool == "pyinstrument":
        argv = [sys.executable, "-m", "pyinstrument", "-r", "html", "-o", str(out_dir / "pyinstrument.html"),
                "-m", "streams.cli", "worker"]
    else:
        argv = [sys.executable, "-m", "streams.cli", "worker"]
    worker = Proc("tagstream", argv, env, out_dir / "worker.log").start()
    spy: subprocess.Popen[bytes] | None = None
    prof_path = out_dir / ("perf.data" if args.tool == "perf" else "profile.speedscope.json")
    try:
        if args.tool == "py-spy":
            spy = start_py_spy(worker.pid, prof_path, out_dir / "py-spy.log", args.native)
        elif args.tool == "perf":
            spy = start_perf(worker.pid, prof_path, out_dir / "perf.log")
        d = await watch_drain(worker, metrics_url=f"http://127.0.0.1:{port}/metrics",
                              counter="tagstream_events_in_total", changelog=f"{app_id}-customers-changelog",
                              bootstrap=load.bootstrap, events=args.events, label="(c) tagstream under profiler",
                              progress_only=True)
        log(f"drained {args.events:,} events in {d.seconds:.1f}s ({d.events_per_s:,.0f}/s under the profiler, "
            f"{d.cpu_utilisation:.2f} cores)")
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy and perf write their files on Ctrl-C
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
        worker.stop()  # pyinstrument writes its report when the worker exits
        if not args.keep:
            from .audiences import cleanup_redis
            from .common import delete_topics

            await delete_topics(args.bootstrap, [run_id])
            cleanup_redis(args.redis_url, [app_id])
    if args.tool in ("py-spy", "perf"):
        if not prof_path.exists():
            print(f"{args.tool} wrote no profile; see {out_dir / (args.tool + '.log')}", file=sys.stderr)
            return 1
        text = summarize_speedscope(prof_path) if args.tool == "py-spy" else summarize_perf(prof_path)
        (out_dir / "profile-top.txt").write_text(text + "\n")
        print("\n" + text)
        how = "speedscope" if args.tool == "py-spy" else "perf report -i"
        print(f"\nprofile: {prof_path} ({how})\nsummary: {out_dir / 'profile-top.txt'}")
    else:
        print(f"\npyinstrument report: {out_dir / 'pyinstrument.html'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--tool", choices=("py-spy", "pyinstrument", "perf"), default="py-spy")
    p.add_argument("--native", action="store_true", help="py-spy: sample the C frames too (--native)")
    p.add_argument("--seed", type=int, default=20261127)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--rules", default=str(REFERENCE_RULES))
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--keep", action="store_true", help="keep the run's topics and Redis keys")
    args = p.parse_args(argv)
    args.rules = str(Path(args.rules).resolve())
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
