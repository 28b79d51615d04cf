"""deploy/grafana/s3s3.json and deploy/prometheus/s3s3-alerts.yml: valid, and over metrics s3s3 exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from s3s3.audit import Report
from s3s3.audit import write_textfile as write_audit_textfile
from s3s3.config import Mode
from s3s3.listen.backlog import Backlog
from s3s3.listen.metrics import Metrics
from s3s3.sync.summary import Summary, write_textfile

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
DASHBOARD = DEPLOY / "grafana" / "s3s3.json"
ALERTS = DEPLOY / "prometheus" / "s3s3-alerts.yml"
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


class StillWatcher:
    """A Watcher whose reading is given."""

    def current(self) -> Backlog:
        return Backlog(Mode.STREAM, waiting=1, pending=2, oldest_pending_seconds=3.0, consumers=1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample name the listener's /metrics and the bucket sync's and the audit's textfiles can carry, and
    Prometheus' up."""
    metrics = Metrics()
    metrics.watch(StillWatcher())  # type: ignore[arg-type]
    path = tmp_path_factory.mktemp("textfile") / "s3s3.prom"
    write_textfile(str(path), Summary())
    audit = path.with_name("s3s3-audit.prom")
    write_audit_textfile(str(audit), Report().finish(), ok=True)
    text = generate_latest(metrics.registry).decode() + path.read_text() + audit.read_text()
    names = {"up"}
    for name, kind in re.findall(r"^# TYPE (\w+) (\w+)$", text, re.M):
        base = name.removesuffix("_total")
        names.update(base + suffix for suffix in SUFFIXES[kind])
    return names


def named_metrics(expr: str) -> set[str]:
    """The metric names an expression reads (s3s3's own, and up)."""
    return set(re.findall(r"\bs3s3_\w+", expr)) | ({"up"} if re.search(r"\bup\{", expr) else set())


def test_the_dashboard_is_a_grafana_dashboard_over_exported_metrics_only(exported: set[str]) -> None:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"] == "s3s3" and isinstance(dashboard["schemaVersion"], int)
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        place = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(place) and place["x"] + place["w"] <= 24, panel["title"]
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    assert all(t["refId"] for p in panels for t in p["targets"])
    used = set().union(*map(named_metrics, exprs))
    assert used - exported == set()
    # It shows throughput, backlog, oldest pending, lag percentiles, failures, dead letters, per destination
    assert {"s3s3_bytes_copied_total", "s3s3_backlog_waiting", "s3s3_backlog_oldest_pending_seconds",
            "s3s3_replication_lag_seconds_bucket", "s3s3_copies_total", "s3s3_deadletter_entries",
            "s3s3_last_copy_timestamp_seconds"} <= used  # fmt: skip


def test_the_alert_rules_read_exported_metrics_only(exported: set[str]) -> None:
    exprs = re.findall(r"^\s+expr: (?:\|\n)?((?:.+\n?)+?)(?=^\s+(?:for|labels):)", ALERTS.read_text(), re.M)
    assert len(exprs) == 8
    used = set().union(*map(named_metrics, exprs))
    assert used - exported == set()


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: apt-get install prometheus (make test does)"
    return found


def test_promtool_checks_the_alert_rules(promtool: str) -> None:
    done = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 8 rules found" in done.stdout


def test_the_alert_rules_pass_their_unit_tests(promtool: str) -> None:
    tests = ALERTS.with_name("s3s3-alerts.test.yml")
    done = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True, timeout=60,
                          cwd=ALERTS.parent)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
