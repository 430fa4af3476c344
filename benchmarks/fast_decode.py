"""Ingest's fast decoding (``schemas.fast_decode``) as Python and compiled with the engine, per record.

    python -m benchmarks.fast_decode [--records 100000] [--repeat 5] [--seed 7]

``fast_canonical`` over the generator's valid records (all three sources), the best of ``--repeat``
loops, each variant in a process of its own: ``python`` imports the module before the engine
(``streams.engine.native.OPTIONAL``: it stays Python), ``compiled`` after it (the mypyc build,
``python -m streams.tools.build_native``). Run it alone; docs/operations.md, *Compiled engine*.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(records: int, repeat: int, seed: int) -> dict[str, object]:
    """One variant, in this process: whichever ``schemas.fast_decode`` the imports gave."""
    import schemas.fast_decode as fd
    from streams.tools.generator import RetailGenerator

    recs = [(e.source, e.value) for e in RetailGenerator(seed=seed, customers=100_000).take(records) if e.valid]
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for source, value in recs:
            fd.fast_canonical(source, value, 1_780_000_000_000)
        best = min(best, time.perf_counter() - t)
    return {"module": Path(str(fd.__file__)).name, "records": len(recs), "us_per_record": best / len(recs) * 1e6}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--variant", choices=("python", "compiled"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.variant is not None:
        if args.variant == "python":
            import schemas.fast_decode  # noqa: F401  before the engine: stays Python
        import streams.engine  # noqa: F401  chooses the compiled modules
        print(json.dumps(measure(args.records, args.repeat, args.seed)))
        return 0
    out = {}
    for variant in ("python", "compiled"):
        proc = subprocess.run([sys.executable, "-m", "benchmarks.fast_decode", "--variant", variant,
                               "--records", str(args.records), "--repeat", str(args.repeat), "--seed", str(args.seed)],
                              cwd=REPO, capture_output=True, text=True, check=True)
        out[variant] = json.loads(proc.stdout)
        print(f"{variant:9} {out[variant]['us_per_record']:.2f} µs per record ({out[variant]['module']}, "
              f"{out[variant]['records']:,} records, best of {args.repeat})", flush=True)
    print(f"compiled / python: {out['compiled']['us_per_record'] / out['python']['us_per_record']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
