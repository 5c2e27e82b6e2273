"""Running a test's work on several threads at once."""

from __future__ import annotations

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
