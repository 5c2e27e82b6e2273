"""Running a test's work on several threads at once."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable


def run_concurrently(work: Callable[[int], None], n: int, timeout: float | None = None) -> None:
    """Run ``work(0)`` .. ``work(n - 1)`` on ``n`` threads at once; re-raise the first failure
    (an assertion in a thread would otherwise only be printed). With ``timeout``, a thread still
    running that many seconds after its start fails the test (it is left behind, a daemon)."""
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    hung = sum(t.is_alive() for t in threads)
    if hung:
        raise AssertionError(f"{hung} of {n} threads did not finish within {timeout} s")
    if errors:
        raise errors[0]


def progress_during_calls(call: Callable[[], object], calls: int) -> int:
    """Run ``call()`` ``calls`` times on a worker thread while this thread counts; return how far
    the count moved *during* the calls (read by the worker just before and after each one).

    A call holding the GIL throughout sees no movement, deterministically while each call is
    shorter than the 50 ms switch interval set here; a call releasing it sees some.
    """
    state = {"counter": 0, "progress": 0, "done": False}

    def work() -> None:
        for _ in range(calls):
            before = state["counter"]
            call()
            state["progress"] += state["counter"] - before
        state["done"] = True

    old = sys.getswitchinterval()
    sys.setswitchinterval(0.05)
    try:
        worker = threading.Thread(target=work)
        worker.start()
        while not state["done"]:
            state["counter"] += 1
        worker.join()
    finally:
        sys.setswitchinterval(old)
    return state["progress"]
