"""`python -m s3s3.scripts.bucket --config FILE`: the original's name for `s3s3bucket`, the same code."""

from __future__ import annotations

import sys

from s3s3.cli import bucket_main

if __name__ == "__main__":
    sys.exit(bucket_main())
