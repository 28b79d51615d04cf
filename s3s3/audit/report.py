"""What an audit reports: a line per key and destination, a summary with a digest, and the same in rclone's words.

- `--report FILE`: JSON Lines, one `Entry` per key and destination, then the
  summary. The summary's `digest` is the SHA-256 of the per-key lines in the
  order they are written, destination by destination (as configured) and key
  by key in the order S3 lists them (UTF-8 binary), so two audits of buckets
  that did not change, with the same options, give the same digest.
- `--combined FILE`: rclone `check --combined`'s format, one line per key: a
  symbol, a space, the path below the source's prefix. `{dest}` in FILE is
  the destination's section name (one file each, as rclone checks one pair).
- `--metrics-file FILE`: the summary as a Prometheus textfile (node_exporter),
  read by the alert rule S3S3AuditFailed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any

from s3s3.audit.evidence import Evidence, Verdict
from s3s3.errors import EXIT_DIFFERS, EXIT_FAILED, EXIT_OK, ConfigError

# rclone check --combined: "=" identical, "*" differs, "+" missing at the destination, "-" missing at the
# source, "!" an error reading or hashing. rclone also writes "=" for a match whose hashes it could not check.
SYMBOLS = {
    Verdict.EQUAL: "=",
    Verdict.UNPROVEN: "=",
    Verdict.DIFFERS: "*",
    Verdict.MISSING: "+",
    Verdict.EXTRA: "-",
    Verdict.ERROR: "!",
}
DEST_NAME = "{dest}"  # in --combined FILE: the destination's section name


@dataclass(frozen=True)
class Entry:
    """One key at one destination: the report's line."""

    key: str  # the source's key (for an extra one: the key it would have at the source)
    dest: str  # the destination's label, section:bucket
    verdict: Verdict
    evidence: Evidence
    size: int  # the source's size (an extra key's: the destination's)
    source_etag: str | None
    dest_etag: str | None
    path: str = ""  # the key below the source's prefix, as --combined names it
    error: str | None = None  # why the audit of the key failed (verdict error)

    def as_dict(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "key": self.key, "dest": self.dest, "verdict": str(self.verdict), "evidence": str(self.evidence),
            "size": self.size, "source_etag": self.source_etag, "dest_etag": self.dest_etag,
        }  # fmt: skip
        if self.error is not None:
            fields["error"] = self.error
        return fields

    def line(self) -> str:
        """The entry as one JSON line, the same bytes for the same entry (what the digest is made of)."""
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    def combined(self) -> str:
        """The entry as rclone check --combined writes it."""
        return f"{SYMBOLS[self.verdict]} {self.path}"


@dataclass
class Findings:
    """Entries counted by verdict and by evidence (at one destination, or at all of them)."""

    verdicts: Counter[Verdict] = field(default_factory=Counter)
    evidence: Counter[Evidence] = field(default_factory=Counter)

    def add(self, entry: Entry) -> None:
        self.verdicts[entry.verdict] += 1
        self.evidence[entry.evidence] += 1

    def as_dict(self) -> dict[str, dict[str, int]]:
        """Every verdict (zeros included); the evidence that was used."""
        return {
            "verdicts": {str(v): self.verdicts[v] for v in Verdict},
            "evidence": {str(e): n for e, n in sorted(self.evidence.items()) if n},
        }


@dataclass
class Summary(Findings):
    """What an audit found, for the printed summary, --json, the report's last line and the exit code."""

    keys: int = 0
    requests: dict[str, int] = field(default_factory=dict)  # listing pages, HEADs, GETs
    bytes_read: int = 0
    seconds: float = 0.0
    digest: str = ""
    read_fraction: float = 0.0
    seed: int | None = None  # the seed that picked the keys read back
    interrupted: bool = False
    errors: list[str] = field(default_factory=list)  # whole-destination problems (a listing that failed)
    destinations: dict[str, Findings] = field(default_factory=dict)

    def count(self, entry: Entry) -> None:
        self.keys += 1
        self.add(entry)
        self.destinations.setdefault(entry.dest, Findings()).add(entry)

    def exit_code(self, *, allow_unproven: bool = False) -> int:
        """1 when the audit could not decide everything; else 3 when a key is not proven at a destination; else 0."""
        if self.errors or self.interrupted or self.verdicts[Verdict.ERROR]:
            return EXIT_FAILED
        failing = [Verdict.DIFFERS, Verdict.MISSING] + ([] if allow_unproven else [Verdict.UNPROVEN])
        return EXIT_DIFFERS if any(self.verdicts[v] for v in failing) else EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "summary": True,
            "keys": self.keys,
            **super().as_dict(),
            "requests": dict(self.requests),
            "bytes_read": self.bytes_read,
            "read_fraction": self.read_fraction,
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
            "digest": self.digest,
            "interrupted": self.interrupted,
            "errors": list(self.errors),
            "destinations": {name: tally.as_dict() for name, tally in self.destinations.items()},
        }

    def line(self) -> str:
        verdicts = ", ".join(f"{self.verdicts[v]} {v}" for v in Verdict)
        evidence = ", ".join(f"{n} {e}" for e, n in sorted(self.evidence.items()) if n) or "none"
        asked = ", ".join(f"{n} {kind}" for kind, n in self.requests.items())
        text = f"audited {self.keys} keys: {verdicts}; evidence: {evidence}; requests: {asked}"
        if self.read_fraction:
            picked = f" (seed {self.seed})" if self.seed is not None else ""
            text += f"; read back {self.read_fraction:.2%} of keys{picked}, {self.bytes_read} bytes"
        text += f"; {self.seconds:.1f}s; digest {self.digest}"
        return text + (" (interrupted)" if self.interrupted else "")


class Report:
    """Where an audit's entries go, in order: the summary and digest always, the files where asked."""

    def __init__(self, path: str | None = None, combined: str | None = None) -> None:
        self.path = path
        self.combined = combined
        self.summary = Summary()
        self._digest = hashlib.sha256()
        self._files = contextlib.ExitStack()
        self._lines: IO[str] | None = None
        self._combined: dict[str, IO[str]] = {}  # destination label -> its combined file
        self._lock = threading.Lock()

    def begin(self, dests: dict[str, str]) -> None:
        """Open the files for these destinations (label -> section name); one combined file must name each."""
        if self.combined and len(dests) > 1 and DEST_NAME not in self.combined:
            raise ConfigError(f"--combined {self.combined}: rclone's format names no destination, and {len(dests)} "
                              f"are audited: put {DEST_NAME} in the file name, or name one --dest")  # fmt: skip
        if self.path:
            self._lines = self._files.enter_context(_created(self.path))
        for label, name in dests.items() if self.combined else ():
            self._combined[label] = self._files.enter_context(_created((self.combined or "").replace(DEST_NAME, name)))

    def add(self, entry: Entry) -> None:
        """Count, hash and write one entry (entries come in order: the digest depends on it)."""
        line = entry.line()
        with self._lock:
            self.summary.count(entry)
            self._digest.update(line.encode() + b"\n")
            if self._lines is not None:
                self._lines.write(line + "\n")
            combined = self._combined.get(entry.dest)
            if combined is not None:
                combined.write(entry.combined() + "\n")

    def finish(self) -> Summary:
        """Seal the digest, write the summary line, close the files; return the summary."""
        self.summary.digest = "sha256:" + self._digest.hexdigest()
        if self._lines is not None:
            self._lines.write(json.dumps(self.summary.as_dict(), sort_keys=True) + "\n")
        self.close()
        return self.summary

    def close(self) -> None:
        self._files.close()
        self._lines, self._combined = None, {}

    def __enter__(self) -> Report:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _created(path: str) -> IO[str]:
    """A new text file at `path` (an older one is replaced), for the caller's ExitStack to close."""
    return open(path, "w", encoding="utf-8")


def write_textfile(path: str, summary: Summary, *, ok: bool) -> None:
    """The summary as a Prometheus textfile (for node_exporter), replaced atomically; `ok`: the audit passed."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()
    keys = Gauge("s3s3_audit_keys", "Keys by destination and verdict in the last audit.", ["dest", "verdict"],
                 registry=registry)  # fmt: skip
    evidence = Gauge("s3s3_audit_evidence", "Keys by destination and the evidence of their verdict in the last audit.",
                     ["dest", "evidence"], registry=registry)  # fmt: skip
    for dest, tally in summary.destinations.items():
        for verdict in Verdict:
            keys.labels(dest, str(verdict)).set(tally.verdicts[verdict])
        for used, count in tally.evidence.items():
            evidence.labels(dest, str(used)).set(count)
    requests = Gauge("s3s3_audit_requests", "Requests the last audit made, by kind.", ["kind"], registry=registry)
    for kind, count in summary.requests.items():
        requests.labels(kind).set(count)
    Gauge("s3s3_audit_bytes_read", "Bytes the last audit read back.", registry=registry).set(summary.bytes_read)
    Gauge("s3s3_audit_seconds", "Duration of the last audit.", registry=registry).set(summary.seconds)
    Gauge("s3s3_audit_ok", "1 if the last audit proved every key at every destination.", registry=registry).set(ok)
    ended = Gauge("s3s3_audit_last_run_timestamp_seconds", "When the last audit ended.", registry=registry)
    ended.set_to_current_time()
    write_to_textfile(path, registry)
