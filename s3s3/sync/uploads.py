"""Incomplete multipart uploads at a destination: found and aborted (`s3s3bucket --abort-incomplete-uploads`).

s3s3 aborts every upload it gives up on. Two cases escape it: the store
created an upload but its answer never arrived (s3s3 never learned the upload
ID), and every abort of one was refused until s3s3 stopped asking (or the
process was killed mid-copy). Their parts stay, and are billed, until someone
aborts them: a lifecycle rule (AbortIncompleteMultipartUpload) where the store
has one, or this.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from s3s3.copy import source_key
from s3s3.retry import ABORT_RETRY, Budget, RetryPolicy, describe
from s3s3.retry import call as retry_call
from s3s3.store import Store

logger = logging.getLogger(__name__)


@dataclass
class Aborted:
    """What one destination's clean-up did."""

    aborted: int = 0
    kept: int = 0  # younger than the age asked for, or for keys the source does not hold
    failed: int = 0


def abort_incomplete(
    source: Store, dest: Store, older_than: float, *, prefix: str = "", dry_run: bool = False,
    retry: RetryPolicy = ABORT_RETRY,
) -> Aborted:
    """Abort uploads at `dest` begun over `older_than` seconds ago, under its prefix, for keys the source holds.

    Uploads of keys the source lacks are left alone: they are not s3s3's
    (or not only), and their owner may still complete them.
    """
    done = Aborted()
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
    label = dest.label
    for upload in dest.list_uploads(dest.endpoint.prefix + prefix):
        key = source_key(source, dest, upload.key)
        if upload.initiated > cutoff or source.head(key) is None:
            done.kept += 1
            continue
        started = upload.initiated.strftime("%Y-%m-%dT%H:%M:%SZ")
        if dry_run:
            print(f"would abort the upload of {upload.key!r} at {label} (begun {started})", flush=True)
            done.aborted += 1
            continue
        try:
            retry_call(
                lambda u=upload: dest.abort_upload(u.key, u.upload_id),  # type: ignore[misc]
                Budget(retry), what=f"aborting the upload of {upload.key!r}",
            )  # fmt: skip
        except Exception as e:
            logger.error("Could not abort the upload of %r at %s: %s", upload.key, label, describe(e))
            done.failed += 1
            continue
        logger.info("Aborted the incomplete upload of %r at %s (begun %s)", upload.key, label, started)
        done.aborted += 1
    return done
