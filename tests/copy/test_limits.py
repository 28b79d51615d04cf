"""s3s3.copy.limits: the budgets a process's copies share; bytes held in memory taken and given back by threads."""

from __future__ import annotations

import threading

import pytest

from s3s3.copy.limits import DEFAULT, MEMORY_BUDGET, Limits, MemoryBudget, keep_big_buffers_off_the_heap
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(30)

BLOCKED = 0.3  # seconds a waiter is given to (wrongly) get through before it is taken to be waiting


class Waiter:
    """A thread that acquires `size` bytes of the budget, and says when it got them."""

    def __init__(self, budget: MemoryBudget, size: int) -> None:
        self.got: int | None = None
        self.started = threading.Event()
        self.acquired = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(budget, size), daemon=True)
        self.thread.start()
        assert self.started.wait(5)

    def _run(self, budget: MemoryBudget, size: int) -> None:
        self.started.set()
        self.got = budget.acquire(size)
        self.acquired.set()

    def join(self) -> None:
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


def test_acquire_takes_what_is_asked_up_to_the_limit() -> None:
    budget = MemoryBudget(100)
    assert budget.acquire(40) == 40
    assert budget.acquire(60) == 60
    assert budget.used == 100
    budget.release(60)
    budget.release(40)
    assert budget.used == 0


def test_a_request_over_the_limit_is_capped_at_the_limit() -> None:
    # Given a budget of 100 bytes, When a part of 1000 bytes asks
    budget = MemoryBudget(100)
    # Then it gets the whole budget (not more) and does not wait forever
    assert budget.acquire(1000) == 100
    assert budget.used == 100
    budget.release(100)
    assert budget.used == 0


def test_acquire_waits_while_the_budget_is_used_and_proceeds_once_released() -> None:
    # Given 70 of 100 bytes held
    budget = MemoryBudget(100)
    budget.acquire(70)
    # When another copy asks for 50
    waiter = Waiter(budget, 50)
    # Then it waits
    assert not waiter.acquired.wait(BLOCKED)
    assert budget.used == 70
    # When the 70 are released, Then it gets its 50
    budget.release(70)
    assert waiter.acquired.wait(5)
    waiter.join()
    assert waiter.got == 50
    assert budget.used == 50


def test_a_partial_release_lets_through_only_a_request_that_then_fits() -> None:
    budget = MemoryBudget(100)
    budget.acquire(100)
    waiter = Waiter(budget, 50)
    # When 30 are released, 50 still do not fit
    budget.release(30)
    assert not waiter.acquired.wait(BLOCKED)
    # When 20 more are, they do
    budget.release(20)
    assert waiter.acquired.wait(5)
    waiter.join()
    assert (waiter.got, budget.used) == (50, 100)


def test_a_capped_request_waits_until_the_whole_budget_is_free() -> None:
    budget = MemoryBudget(100)
    budget.acquire(10)
    waiter = Waiter(budget, 1000)
    assert not waiter.acquired.wait(BLOCKED)
    budget.release(10)
    assert waiter.acquired.wait(5)
    waiter.join()
    assert (waiter.got, budget.used) == (100, 100)


def test_a_release_wakes_every_waiter_that_now_fits() -> None:
    # Given the whole budget held, and two copies waiting for half of it each
    budget = MemoryBudget(100)
    budget.acquire(100)
    first, second = Waiter(budget, 50), Waiter(budget, 50)
    assert not first.acquired.wait(BLOCKED)
    assert not second.acquired.is_set()
    # When all of it is released at once, Then both proceed
    budget.release(100)
    assert first.acquired.wait(5)
    assert second.acquired.wait(5)
    first.join()
    second.join()
    assert budget.used == 100


def test_of_several_waiters_only_as_many_as_fit_proceed_and_the_rest_follow_as_bytes_come_back() -> None:
    # Given the whole budget held, and three copies waiting for 40 each
    budget = MemoryBudget(100)
    budget.acquire(100)
    waiters = [Waiter(budget, 40) for _ in range(3)]
    # When all of it is released, Then two proceed (80 of 100) and the third waits
    budget.release(100)
    wait_until(lambda: sum(w.acquired.is_set() for w in waiters) == 2, timeout=5)
    [third] = [w for w in waiters if not w.acquired.is_set()]
    assert not third.acquired.wait(BLOCKED)
    assert budget.used == 80
    # When one of them gives its 40 back, Then the third proceeds
    budget.release(40)
    assert all(w.acquired.wait(5) for w in waiters)
    for w in waiters:
        w.join()
    assert budget.used == 80


def test_a_process_has_one_memory_budget_of_64_mib_and_its_bwlimit_in_its_limits() -> None:
    limits = Limits.for_process(20 * 1024 * 1024)
    assert limits.memory.limit == MEMORY_BUDGET == 64 * 1024 * 1024
    assert limits.bandwidth.rate == 20 * 1024 * 1024
    assert Limits.for_process().bandwidth.rate == 0  # no cap
    # Copies given no limits of their own share one set, so they too are bounded together
    assert DEFAULT.memory.limit == MEMORY_BUDGET and DEFAULT.bandwidth.rate == 0


def test_keeping_big_buffers_off_the_heap_is_harmless_to_call_twice() -> None:
    keep_big_buffers_off_the_heap()
    keep_big_buffers_off_the_heap()
