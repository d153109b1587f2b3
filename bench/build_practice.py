"""Time a sample practice build; the last line printed is JSON.

    .venv/bin/python bench/build_practice.py --size large \\
        --target mariadb://root@127.0.0.1/opendental_large --replace
    .venv/bin/python bench/build_practice.py --size large \\
        --target var/large/opendental.sqlite3 --replace

Prints the build summary, then one line
``{"target": ..., "size": ..., "seconds": ..., "counts": {...}}`` (the target
without any password). ``--mariadb-method insert`` times multi-row INSERTs
instead of the default LOAD DATA LOCAL INFILE. Results: ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import date

from sandbox.practice.build import build
from sandbox.practice.cli import summary
from sandbox.practice.load_mariadb import METHODS
from sandbox.practice.profiles import SIZES
from sandbox.practice.target import parse_target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--size", choices=sorted(SIZES), default="large")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--today", type=date.fromisoformat, default=None)
    parser.add_argument("--clinics", action="store_true")
    parser.add_argument("--replace", action="store_true")
    parser.add_argument("--mariadb-method", choices=METHODS, default="infile")
    args = parser.parse_args()
    where = parse_target(args.target).describe()
    report = build(
        args.target,
        size=args.size,
        seed=args.seed,
        today=args.today,
        clinics=args.clinics,
        replace=args.replace,
        mariadb_method=args.mariadb_method,
    )
    print(summary(report, where), flush=True)
    result = {
        "target": where,
        "size": args.size,
        "seed": args.seed,
        "today": report.today.isoformat(),
        "clinics": args.clinics,
        "mariadb_method": args.mariadb_method if report.kind == "mariadb" else None,
        "python": platform.python_version(),
        "seconds": report.seconds,
        "counts": report.counts,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
