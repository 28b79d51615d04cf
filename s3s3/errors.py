"""The exceptions s3s3 raises, and the exit codes its commands return."""

from __future__ import annotations

# Exit codes of every command.
EXIT_OK = 0  # everything asked for was done
EXIT_FAILED = 1  # some of it failed: objects not copied, endpoints unreachable, keys an audit could not decide
EXIT_USAGE = 2  # bad configuration or command line, or a Redis too old: nothing was done
# 3 says "not done as asked", per command:
EXIT_UNHEARD = 3  # `s3s3 publish`: in pubsub mode no listener received a key, so it is lost
EXIT_DIFFERS = 3  # `s3s3 audit`: a key differs, is missing, or is unproven at a destination (they are listed)


class S3S3Error(Exception):
    """Base of every error s3s3 raises on purpose."""


class ConfigError(S3S3Error):
    """Raised when the configuration file or the command line cannot be used.

    `problems` holds one line per problem, each naming the file, section,
    option and what is wrong (loading a file reports every problem in it at
    once); the message is those lines.
    """

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class CopyError(S3S3Error):
    """Raised when one key could not be copied to one destination.

    `last_exception` is what the store (or the integrity check) said last.
    """

    def __init__(self, message: str, last_exception: BaseException | None = None) -> None:
        super().__init__(message)
        self.last_exception = last_exception


class IntegrityError(CopyError):
    """Raised when bytes read or written do not match the MD5 they must have."""


class Unproven(IntegrityError):
    """Raised when the part ETags a store gave do not make the source's ETag: nothing proves the copy."""


class SourceChanged(S3S3Error):
    """Raised when the source holds another version than the one just copied: copy it again."""


class StoreError(S3S3Error):
    """Raised when a store refuses a request, or cannot be reached, or its answer is cut short.

    `code` is S3's error code (or the HTTP status, or the name of what broke
    the connection), `status` the HTTP status (0: no answer), `operation` the
    S3 operation; `transient` says whether the same request may succeed
    later (s3s3.retry decides, in one place). Both transports raise these.
    """

    def __init__(
        self, message: str, *, operation: str, code: str = "", status: int = 0, transient: bool = False
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.code = code
        self.status = status
        self.transient = transient


class NotFound(StoreError):
    """Raised when the key is not in the bucket (NoSuchKey, 404)."""


class NoSuchBucket(StoreError):
    """Raised when the bucket itself does not exist."""


class PreconditionFailed(StoreError):
    """Raised when the object no longer has the ETag a request was made for (If-Match): it changed."""


class BadDigest(StoreError):
    """Raised when the store refused a body whose MD5 is not the Content-MD5 sent with it."""


class BadMessage(S3S3Error):
    """Raised when an announcement cannot be understood; the message says why."""


class LockHeld(S3S3Error):
    """Raised when another bucket sync holds the lock on the same buckets."""


class LeaseError(S3S3Error):
    """Raised when a key's lease (s3s3.state.leases) cannot be had: another replayer held it past the wait, or
    Redis did not answer. The key is tried again later, not lost.
    """


class RequirementError(S3S3Error):
    """Raised when a server s3s3 needs is older than the version it needs (Redis before 6.2)."""


class ListingOrderError(S3S3Error):
    """Raised when a store lists keys out of UTF-8 binary order, so the diff cannot be trusted."""


class NotReplicated(S3S3Error):
    """Raised when fewer replicas than `[pubsub] wait_replicas` acknowledged an announcement in time.

    The master holds it, but a failover now would lose it: its sender is not
    told it was taken (the webhook answers 503, `s3s3 publish` exits 1).
    """
