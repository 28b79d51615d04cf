"""Logging set-up, done once by the command line; modules only call getLogger(__name__).

Logs go to stderr (supervisord and systemd capture it): one human line per
record by default, or one JSON object per line for log shippers. A copy's line
carries its key, destination, outcome, bytes and duration as fields too.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable

from s3s3.outcome import Action, Outcome

logger = logging.getLogger("s3s3.copy")

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# extra fields a copy line carries (version_id: the source version or delete marker a replay wrote)
FIELDS = ("key", "dest", "outcome", "bytes", "duration", "error", "version_id")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, and a copy's fields."""

    converter: Callable[[float | None], time.struct_time] = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({name: getattr(record, name) for name in FIELDS if hasattr(record, name)})
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup(level: str = "INFO", fmt: str = "text") -> None:
    """Send s3s3's logs to stderr at `level`, as `text` or `json` lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("s3s3").setLevel(level.upper())


def log_outcome(outcome: Outcome) -> None:
    """The one line logged per key and destination."""
    fields = {
        "key": outcome.key,
        "dest": outcome.dest,
        "outcome": outcome.action,
        "bytes": outcome.size,
        "duration": round(outcome.seconds, 3),
    }
    if outcome.version_id is not None:
        fields["version_id"] = outcome.version_id
    if outcome.action is Action.FAILED:
        fields["error"] = outcome.error
        logger.error(
            "Failed %r to %s after %.2fs: %s", outcome.key, outcome.dest, outcome.seconds, outcome.error, extra=fields
        )
    elif outcome.action is Action.MISSING:
        logger.warning("Missing %r at the source; nothing copied to %s", outcome.key, outcome.dest, extra=fields)
    elif outcome.action is Action.KEPT:
        logger.info("Kept %r at %s: %s", outcome.key, outcome.dest, outcome.error, extra=fields)
    elif outcome.action is Action.DELETED:
        logger.info("Deleted %r at %s in %.2fs", outcome.key, outcome.dest, outcome.seconds, extra=fields)
    else:
        logger.info(
            "%s %r to %s: %d bytes in %.2fs",
            outcome.action.capitalize(),
            outcome.key,
            outcome.dest,
            outcome.size,
            outcome.seconds,
            extra=fields,
        )
