"""Process groups started by tests: stop them whole, and see who is left."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from crm_pipelines.core.processes import signal_group


def group_members(pgid: int) -> list[str]:
    """The command lines of the live processes in process group ``pgid`` (zombies excluded)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z" and int(fields[2]) == pgid:
                members.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip())
        except (OSError, ValueError, IndexError):
            continue
    return members


def stop_group(proc: subprocess.Popen, timeout_s: float = 60.0, sig: int = signal.SIGTERM) -> list[str]:
    """Send ``sig`` to the group ``proc`` leads (even if ``proc`` itself has exited), wait until every
    member is gone, SIGKILL what is left after ``timeout_s``. Returns what had to be killed."""
    pgid = proc.pid
    signal_group(pgid, sig)
    deadline = time.monotonic() + timeout_s
    while group_members(pgid) and time.monotonic() < deadline:
        proc.poll()  # reap the leader: a zombie is no survivor
        time.sleep(0.5)
    survivors = group_members(pgid)
    signal_group(pgid, signal.SIGKILL)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    return survivors
