"""The audit: what each destination holds of the source, key by key, with the evidence for it; nothing is copied.

`audit` (s3s3.audit.audit) compares the listings, asks HEADs where they do
not decide, and reads back a sample for fixity (s3s3.audit.fixity); each key's
verdict and evidence are decided in s3s3.audit.evidence, and reported in
s3s3.audit.report (JSON Lines with a digest, rclone's combined format, a
Prometheus textfile). Only the face imports this package.
"""

from __future__ import annotations

from s3s3.audit.audit import AuditOptions, audit
from s3s3.audit.evidence import Decision, Evidence, Verdict
from s3s3.audit.report import Entry, Report, Summary, write_textfile

__all__ = ["AuditOptions", "Decision", "Entry", "Evidence", "Report", "Summary", "Verdict", "audit", "write_textfile"]
