"""Coverage-guided fuzzing of enroll's client-input loaders with atheris (libFuzzer).

    python bench/fuzz.py --target csr --runs 1000000
    python bench/fuzz.py --all --runs 1000000 --jobs 2
    python bench/fuzz.py --target scep --runs 200000 --max-len 8192

Targets (bench/fuzz_targets.py): csr, scep, est, acme, ocsp. Each runs in its own
process, seeded from tests/vectors/ (plus requests generated at start-up), for
``--runs`` executions. A crash is any exception outside the typed error set
(`enroll.errors.EnrollError` and subclasses); crashes are counted, not fatal, so a run
always reaches its execution count. Per target it prints executions, crashes, seconds
and executions/s, and writes the first traceback (with the input, base64) of each
distinct crash to ``<out>/<target>-crashes.txt``. libFuzzer's own findings (a hang
past ``--timeout`` seconds, a memory blow-up past ``--rss-limit-mb``) end the process:
they are reported as a failed run with its exit status. The exit status is 0 only when
every target ran its executions with no crash.

Needs the ``fuzz`` extra (``pip install -e '.[fuzz]'``: atheris).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(args: argparse.Namespace) -> None:
    """One target inside atheris (this process ends when libFuzzer is done)."""
    import atexit

    import atheris

    sys.path.insert(0, str(HERE))
    with atheris.instrument_imports(include=["enroll"]):
        import enroll.protocols.acme.jws  # noqa: F401
        import enroll.protocols.est.wire  # noqa: F401
        import enroll.protocols.scep.pkimessage  # noqa: F401

        import enroll.csr  # noqa: F401 - instrumented for coverage
        import enroll.ocsp  # noqa: F401
        import enroll.revocation  # noqa: F401
    import fuzz_targets

    target = fuzz_targets.TARGETS[args.child]()
    corpus = Path(args.corpus)
    for i, seed in enumerate(target.seeds):
        (corpus / f"seed-{i:04d}").write_bytes(seed)
    started = time.monotonic()

    def report() -> None:
        Path(args.stats).write_text(json.dumps({
            "target": target.name, "executions": target.executions,
            "crashes": target.crashes, "seconds": round(time.monotonic() - started, 1),
            "distinct": target.first}))
        # Skip the rest of interpreter shutdown (a target's database, worker threads):
        # libFuzzer's timeout alarm is still armed and may fire during a slow one.
        sys.stdout.flush()
        os._exit(0)

    atexit.register(report)
    argv = [sys.argv[0], str(corpus), f"-runs={args.runs}", f"-atheris_runs={args.runs}",
            f"-max_len={args.max_len}", f"-timeout={args.timeout}",
            f"-rss_limit_mb={args.rss_limit_mb}", "-print_final_stats=1"]
    if args.seed is not None:
        argv.append(f"-seed={args.seed}")
    atheris.Setup(argv, target.run)
    atheris.Fuzz()


def run_one(name: str, args: argparse.Namespace, out: Path) -> subprocess.Popen[bytes]:
    corpus = Path(tempfile.mkdtemp(prefix=f"enroll-fuzz-{name}-"))
    stats = out / f"{name}-stats.json"
    stats.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name,
           "--corpus", str(corpus), "--stats", str(stats), "--runs", str(args.runs),
           "--max-len", str(args.max_len), "--timeout", str(args.timeout),
           "--rss-limit-mb", str(args.rss_limit_mb)]
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    log = (out / f"{name}-libfuzzer.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    proc.corpus = corpus  # type: ignore[attr-defined]
    return proc


def finish(name: str, proc: subprocess.Popen[bytes], out: Path) -> dict[str, object]:
    code = proc.wait()
    shutil.rmtree(proc.corpus, ignore_errors=True)  # type: ignore[attr-defined]
    stats_file = out / f"{name}-stats.json"
    stats: dict[str, object] = json.loads(stats_file.read_text()) if stats_file.exists() \
        else {"target": name, "executions": 0, "crashes": 0, "seconds": 0, "distinct": {}}
    stats["exit"] = code
    distinct = stats.pop("distinct", {})
    assert isinstance(distinct, dict)
    crash_file = out / f"{name}-crashes.txt"
    if distinct:
        crash_file.write_text("\n\n".join(f"== {k}\n{v}" for k, v in distinct.items()))
    else:
        crash_file.unlink(missing_ok=True)
    stats["distinct_crashes"] = len(distinct)
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", action="append", default=[],
                        help="csr, scep, est, acme or ocsp (repeatable)")
    parser.add_argument("--all", action="store_true", help="every target")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=1, help="targets run at once")
    parser.add_argument("--max-len", type=int, default=16384)
    parser.add_argument("--timeout", type=int, default=10)
    parser.add_argument("--rss-limit-mb", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "enroll-fuzz"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--stats", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    sys.path.insert(0, str(HERE))
    from fuzz_targets import TARGETS

    names = list(TARGETS) if args.all else args.target
    unknown = [n for n in names if n not in TARGETS]
    if not names or unknown:
        parser.error(f"choose --all or --target from {', '.join(TARGETS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, object]] = []
    pending = list(names)
    running: list[tuple[str, subprocess.Popen[bytes]]] = []
    while pending or running:
        while pending and len(running) < max(1, args.jobs):
            name = pending.pop(0)
            running.append((name, run_one(name, args, out)))
        done = [(n, p) for n, p in running if p.poll() is not None]
        if not done:
            time.sleep(0.5)
            continue
        for name, proc in done:
            running.remove((name, proc))
            results.append(finish(name, proc, out))
    results.sort(key=lambda r: names.index(str(r["target"])))
    print(f"{'target':<8} {'executions':>12} {'crashes':>8} {'distinct':>8} "
          f"{'seconds':>9} {'exec/s':>8} exit")
    ok = True
    for r in results:
        seconds = float(str(r["seconds"])) or 1.0
        executions = int(str(r["executions"]))
        print(f"{r['target']!s:<8} {executions:>12} {r['crashes']!s:>8} "
              f"{r['distinct_crashes']!s:>8} {seconds:>9.1f} {executions / seconds:>8.0f} "
              f"{r['exit']}")
        ok = ok and r["crashes"] == 0 and r["exit"] == 0 and executions >= args.runs
    print(f"logs and crash reports in {out}" + ("" if ok else "  (FAILED)"))
    sys.stdout.flush()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
