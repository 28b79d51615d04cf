"""What an audit reports (s3s3.audit.report): the JSON lines and their digest, rclone's combined lines, the exit
code, the Prometheus textfile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from s3s3.audit.evidence import Evidence, Verdict
from s3s3.audit.report import Entry, Report, Summary, write_textfile
from s3s3.errors import EXIT_DIFFERS, EXIT_FAILED, EXIT_OK, ConfigError

DEST = "dest1:backup"


def entry(key: str, verdict: Verdict = Verdict.EQUAL, evidence: Evidence = Evidence.ETAG_MD5, **more: object) -> Entry:
    return Entry(key, more.pop("dest", DEST), verdict, evidence, 3, "e1", "e2", path=key, **more)  # type: ignore[arg-type]


def written(report: Report, *entries: Entry, dests: dict[str, str] | None = None) -> Summary:
    report.begin(dests or {DEST: "dest1"})
    for item in entries:
        report.add(item)
    return report.finish()


def test_a_line_holds_the_documented_fields_in_the_same_bytes_every_time() -> None:
    line = entry("photos/ünï.jpg").line()

    assert json.loads(line) == {
        "key": "photos/ünï.jpg", "dest": DEST, "verdict": "equal", "evidence": "etag-md5", "size": 3,
        "source_etag": "e1", "dest_etag": "e2",
    }  # fmt: skip
    assert line == entry("photos/ünï.jpg").line() and line.isascii()
    assert json.loads(entry("k", Verdict.ERROR, Evidence.NONE, error="503").line())["error"] == "503"


@pytest.mark.parametrize(
    ("verdict", "symbol"),
    [(Verdict.EQUAL, "="), (Verdict.UNPROVEN, "="), (Verdict.DIFFERS, "*"), (Verdict.MISSING, "+"),
     (Verdict.EXTRA, "-"), (Verdict.ERROR, "!")],  # fmt: skip
)
def test_the_combined_line_is_rclones_symbol_a_space_and_the_path(verdict: Verdict, symbol: str) -> None:
    assert entry("dir/a b.txt", verdict).combined() == f"{symbol} dir/a b.txt"


def test_the_report_file_has_a_line_per_entry_then_the_summary_with_the_digest(tmp_path: Path) -> None:
    # Given a report file and a combined file
    path, combined = tmp_path / "audit.jsonl", tmp_path / "combined.txt"
    entries = [entry("a"), entry("b", Verdict.MISSING, Evidence.LISTING), entry("c", Verdict.EXTRA, Evidence.LISTING)]

    # When three entries are reported
    summary = written(Report(str(path), str(combined)), *entries)

    # Then the file has their lines, then the summary, whose digest is that of the lines
    lines = path.read_text().splitlines()
    assert lines[:3] == [e.line() for e in entries]
    last = json.loads(lines[3])
    assert last["summary"] is True and last["digest"] == summary.digest
    assert last["verdicts"] == {"equal": 1, "differs": 0, "missing": 1, "extra": 1, "unproven": 0, "error": 0}
    assert last["evidence"] == {"etag-md5": 1, "listing": 2}
    assert combined.read_text() == "= a\n+ b\n- c\n"
    # And the digest is the same for the same entries, another for others or in another order
    assert written(Report(), *entries).digest == summary.digest
    assert written(Report(), *entries[::-1]).digest != summary.digest
    changed = [entry("a"), entry("b", Verdict.DIFFERS, Evidence.SIZE), entries[2]]
    assert written(Report(), *changed).digest != summary.digest
    assert summary.digest.startswith("sha256:") and len(summary.digest) == 7 + 64


def test_a_combined_file_names_its_destination_where_several_are_audited(tmp_path: Path) -> None:
    dests = {"dest1:a": "dest1", "dest2:b": "dest2"}

    # When one combined file would hold two destinations, the audit refuses before anything is written
    with pytest.raises(ConfigError, match=r"put \{dest\} in the file name"):
        Report(combined=str(tmp_path / "one.txt")).begin(dests)
    assert list(tmp_path.iterdir()) == []

    # And with {dest} in its name, each destination has its own
    written(Report(combined=str(tmp_path / "{dest}.txt")), entry("x", dest="dest1:a"),
            entry("x", Verdict.MISSING, Evidence.LISTING, dest="dest2:b"), dests=dests)  # fmt: skip
    assert (tmp_path / "dest1.txt").read_text() == "= x\n"
    assert (tmp_path / "dest2.txt").read_text() == "+ x\n"


@pytest.mark.parametrize(
    ("verdicts", "allow_unproven", "code"),
    [
        ([Verdict.EQUAL, Verdict.EXTRA], False, EXIT_OK),
        ([Verdict.EQUAL, Verdict.DIFFERS], False, EXIT_DIFFERS),
        ([Verdict.MISSING], True, EXIT_DIFFERS),
        ([Verdict.UNPROVEN], False, EXIT_DIFFERS),
        ([Verdict.UNPROVEN, Verdict.EXTRA], True, EXIT_OK),
        ([Verdict.DIFFERS, Verdict.ERROR], False, EXIT_FAILED),
    ],
)
def test_the_exit_code_is_0_when_all_is_proven_3_when_a_key_is_not_and_1_when_one_could_not_be_audited(
    verdicts: list[Verdict], allow_unproven: bool, code: int
) -> None:
    summary = written(Report(), *(entry(f"k{i}", v) for i, v in enumerate(verdicts)))

    assert summary.exit_code(allow_unproven=allow_unproven) == code


def test_a_listing_that_failed_or_an_interrupted_audit_exits_1() -> None:
    assert Summary(errors=["dest1:b: cannot list"]).exit_code() == EXIT_FAILED
    assert Summary(interrupted=True).exit_code() == EXIT_FAILED


def test_the_textfile_holds_each_destinations_verdicts_and_evidence_and_whether_the_audit_passed(
    tmp_path: Path,
) -> None:
    summary = written(Report(), entry("a"), entry("b", Verdict.DIFFERS, Evidence.READ))
    summary.requests, summary.bytes_read, summary.seconds = {"list": 2, "head": 1, "get": 2}, 6, 1.5
    path = tmp_path / "s3s3-audit.prom"

    write_textfile(str(path), summary, ok=False)

    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(path.read_text()) for s in family.samples}  # fmt: skip
    assert samples[("s3s3_audit_keys", (("dest", DEST), ("verdict", "equal")))] == 1
    assert samples[("s3s3_audit_keys", (("dest", DEST), ("verdict", "differs")))] == 1
    assert samples[("s3s3_audit_keys", (("dest", DEST), ("verdict", "missing")))] == 0
    assert samples[("s3s3_audit_evidence", (("dest", DEST), ("evidence", "read")))] == 1
    assert samples[("s3s3_audit_requests", (("kind", "get"),))] == 2
    assert samples[("s3s3_audit_bytes_read", ())] == 6
    assert samples[("s3s3_audit_ok", ())] == 0
    assert samples[("s3s3_audit_seconds", ())] == 1.5
    assert samples[("s3s3_audit_last_run_timestamp_seconds", ())] > 1e9
