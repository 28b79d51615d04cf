"""s3s3 commands run as real processes by the tests, and what they log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "  # logs.FORMAT's asctime


@dataclass
class Proc:
    """A running s3s3 command and the lines it has logged so far (timestamps cut off)."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def find(self, pattern: str) -> list[str]:
        """The logged lines that match `pattern` whole."""
        return [line for line in list(self.lines) if re.fullmatch(pattern, line)]

    def wait_for(self, pattern: str, timeout: float = 20.0, count: int = 1) -> str:
        """Wait until `count` lines matching `pattern` are logged; return the first."""
        deadline = time.monotonic() + timeout
        while len(found := self.find(pattern)) < count:
            assert self.alive(), f"exited {self.proc.returncode}:\n" + "\n".join(self.lines[-40:])
            if time.monotonic() > deadline:
                pytest.fail(f"not logged {count}x within {timeout}s: {pattern!r}; last lines:\n"
                            + "\n".join(self.lines[-40:]))  # fmt: skip
            time.sleep(0.05)
        return found[0]

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing in flight is finished or acknowledged."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc.poll() is None


@contextmanager
def spawner() -> Iterator[Callable[..., Proc]]:
    """Start `BIN/<command> args...`; SIGKILL whatever is still running at the end (the `spawn` fixture)."""
    started: list[Proc] = []

    def start(command: str, *args: str) -> Proc:
        proc = subprocess.Popen(
            [str(BIN / command), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
            start_new_session=True,
        )
        running = Proc(proc)
        running.reader = threading.Thread(target=_collect, args=(proc, running.lines), daemon=True)
        running.reader.start()
        started.append(running)
        return running

    yield start
    for running in started:
        if running.alive():
            running.kill()
        running.proc.wait(10)
        assert running.reader is not None
        running.reader.join(10)
        assert running.proc.stderr is not None
        running.proc.stderr.close()


def _collect(proc: subprocess.Popen[str], lines: list[str]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(re.sub(f"^{STAMP}", "", line.rstrip("\n")))
