"""Running a test's work on several threads at once."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_concurrently(work: Callable[[int], None], n: int) -> None:
    """Run ``work(0)`` .. ``work(n - 1)`` on ``n`` threads at once; re-raise the first failure
    (an assertion in a thread would otherwise only be printed)."""
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
