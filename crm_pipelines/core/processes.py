"""Process groups: a child started in its own group is stopped with everything it started."""

from __future__ import annotations

import os
import signal
import time


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to every process of group ``pgid``; False when the group is gone."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def wait_group(pgid: int, timeout_s: float) -> bool:
    """Wait until group ``pgid`` has no process left; False if some remain after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while signal_group(pgid, 0):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def stop_group(pgid: int, timeout_s: float = 30.0, sig: int = signal.SIGTERM) -> bool:
    """``sig`` to the group, then SIGKILL to whatever is left after ``timeout_s``. True if ``sig`` sufficed."""
    signal_group(pgid, sig)
    if wait_group(pgid, timeout_s):
        return True
    signal_group(pgid, signal.SIGKILL)
    wait_group(pgid, 10.0)
    return False
