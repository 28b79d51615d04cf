"""`python -m s3s3.scripts.listen --config FILE`: the original's name for `s3s3listen`, the same code."""

from __future__ import annotations

import sys

from s3s3.cli import listen_main

if __name__ == "__main__":
    sys.exit(listen_main())
