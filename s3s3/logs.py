"""Logging set-up, done once by the command line; modules only call getLogger(__name__)."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from s3s3.copy import Outcome

logger = logging.getLogger("s3s3.copy")

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup(verbose: bool = False, level: str | None = None) -> None:
    """Send s3s3's logs to stderr, one line each (supervisord and systemd capture stderr)."""
    chosen = level.upper() if level else ("DEBUG" if verbose else "INFO")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("s3s3").setLevel(chosen)


def log_outcome(outcome: Outcome) -> None:
    """The one line logged per key and destination."""
    if outcome.action == "failed":
        logger.error(
            "Failed %r to %s after %.2fs: %s", outcome.key, outcome.dest, outcome.seconds, outcome.error
        )
    elif outcome.action == "missing":
        logger.warning("Missing %r at the source; nothing copied to %s", outcome.key, outcome.dest)
    else:
        logger.info(
            "%s %r to %s: %d bytes in %.2fs",
            outcome.action.capitalize(),
            outcome.key,
            outcome.dest,
            outcome.size,
            outcome.seconds,
        )
