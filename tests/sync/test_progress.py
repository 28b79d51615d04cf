"""s3s3.sync.progress: a bucket sync's counts, its progress line, and drawing it on a terminal only."""

from __future__ import annotations

import io
import threading
import time

import pytest

from s3s3.sync.progress import Progress
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(30)

MiB = 1024 * 1024


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def progress_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "s3s3-progress")


def test_progress_counts_keys_listed_queued_and_done_with_their_bytes() -> None:
    progress = Progress(io.StringIO())
    # When keys are listed, queued and finished
    progress.saw(5)
    progress.saw()
    progress.queue(100)
    progress.queue(200)
    progress.finish(100)
    # Then each count adds up
    counts = (progress.listed, progress.queued, progress.queued_bytes, progress.done, progress.done_bytes)
    assert counts == (6, 2, 300, 1, 100)


def test_counts_from_many_threads_at_once_add_up() -> None:
    progress = Progress(io.StringIO())

    def work() -> None:
        for _ in range(1000):
            progress.saw()
            progress.queue(3)
            progress.finish(2)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    counts = (progress.listed, progress.queued, progress.queued_bytes, progress.done, progress.done_bytes)
    assert counts == (8000, 8000, 24000, 8000, 16000)


def test_the_line_says_keys_listed_copied_mib_rate_and_eta() -> None:
    # Given 10 of 40 MiB copied in 10 s (1 of 3 keys), 1000 keys listed
    progress = Progress(io.StringIO())
    progress.started = time.monotonic() - 10.0
    progress.saw(1000)
    for size in (10 * MiB, 20 * MiB, 10 * MiB):
        progress.queue(size)
    progress.finish(10 * MiB)
    # Then the line says so: 1 MiB/s, 30 MiB left in 30 s
    assert progress.line() == "listed 1000 keys; copied 1/3 (10.0/40.0 MiB) at 1.0 MiB/s, ETA 30s   "


def test_with_nothing_copied_yet_there_is_no_eta() -> None:
    progress = Progress(io.StringIO())
    progress.started = time.monotonic() - 10.0
    progress.saw(2)
    progress.queue(MiB)
    assert progress.line() == "listed 2 keys; copied 0/1 (0.0/1.0 MiB) at 0.0 MiB/s, ETA -   "


def test_with_everything_copied_there_is_no_eta() -> None:
    progress = Progress(io.StringIO())
    progress.started = time.monotonic() - 4.0
    progress.saw(2)
    progress.queue(2 * MiB)
    progress.queue(6 * MiB)
    progress.finish(2 * MiB)
    progress.finish(6 * MiB)
    assert progress.line() == "listed 2 keys; copied 2/2 (8.0/8.0 MiB) at 2.0 MiB/s, ETA -   "


def test_on_a_terminal_the_line_is_redrawn_in_place_and_the_final_one_ends_it() -> None:
    # Given a progress on a terminal
    terminal = Terminal()
    progress = Progress(terminal)
    assert progress.enabled is True
    with progress:
        progress.saw(3)
        # Then it draws the line in place (a carriage return, no newline)
        wait_until(lambda: "\rlisted 3 keys;" in terminal.getvalue(), timeout=5)
        assert "\n" not in terminal.getvalue()
    # And on exit it writes the final line, ending with a newline
    text = terminal.getvalue()
    assert text.endswith("\rlisted 3 keys; copied 0/0 (0.0/0.0 MiB) at 0.0 MiB/s, ETA -   \n")
    assert text.count("\n") == 1
    assert all(chunk.startswith("listed ") for chunk in text.split("\r")[1:])


def test_the_drawing_thread_stops_on_exit() -> None:
    before = progress_threads()
    with Progress(Terminal()):
        assert progress_threads() == before + 1
    assert progress_threads() == before


def test_a_stream_that_is_no_terminal_gets_nothing_not_even_the_final_line() -> None:
    stream = io.StringIO()
    before = progress_threads()
    progress = Progress(stream)
    assert progress.enabled is False
    with progress:
        progress.saw(3)
        assert progress_threads() == before
    assert stream.getvalue() == ""


def test_disabled_on_a_terminal_draws_nothing() -> None:
    terminal = Terminal()
    with Progress(terminal, enabled=False) as progress:
        progress.saw(3)
    assert terminal.getvalue() == ""


def test_enabled_by_hand_it_draws_on_any_stream() -> None:
    stream = io.StringIO()
    with Progress(stream, enabled=True) as progress:
        progress.saw(1)
        wait_until(lambda: "\rlisted 1 keys;" in stream.getvalue(), timeout=5)
    assert stream.getvalue().endswith("\rlisted 1 keys; copied 0/0 (0.0/0.0 MiB) at 0.0 MiB/s, ETA -   \n")
