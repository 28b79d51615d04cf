"""Run the benchmark: s3s3, `rclone copy` and the raw floor side by side between two SeaweedFS servers.

    python bench/run.py [--workloads A,B,C] [--tools s3s3,rclone,raw] [--repeat N] [--out DIR]

Prints the table, writes DIR/results.json and DIR/bench.png (DIR defaults to bench/out).
See bench/README.md for what each figure means; the work is done in bench/harness.py.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv: list[str] | None = None) -> int:
    """Make `bench` and `tests` importable when run as a script from anywhere, then run."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from bench.harness import main as harness_main

    return harness_main(argv)


if __name__ == "__main__":
    sys.exit(main())
