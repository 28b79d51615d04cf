"""The exceptions s3s3 raises, and the exit codes its commands return."""

from __future__ import annotations

# Exit codes of every command.
EXIT_OK = 0  # everything asked for was done
EXIT_FAILED = 1  # some objects failed to copy (they are listed)
EXIT_USAGE = 2  # bad configuration or command line: nothing was done


class S3S3Error(Exception):
    """Base of every error s3s3 raises on purpose."""


class ConfigError(S3S3Error):
    """Raised when the configuration file or the command line cannot be used.

    The message is one line naming the file, section, option and what is wrong.
    """


class CopyError(S3S3Error):
    """Raised when one key could not be copied to one destination.

    `last_exception` is what the store (or the integrity check) said last.
    """

    def __init__(self, message: str, last_exception: BaseException | None = None) -> None:
        super().__init__(message)
        self.last_exception = last_exception


class IntegrityError(CopyError):
    """Raised when bytes read or written do not match the MD5 they must have."""


class BadMessage(S3S3Error):
    """Raised when an announcement cannot be understood; the message says why."""


class LockHeld(S3S3Error):
    """Raised when another bucket sync holds the lock on the same buckets."""
