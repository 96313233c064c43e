"""A job launcher for tests: records the runs it would launch, launches nothing."""

from __future__ import annotations

import threading


class FakeLauncher:
    """Records what would be launched; no Dagster."""

    def __init__(self) -> None:
        self.launched: list[tuple[str, dict, dict, list | None]] = []
        self.cancelled: list[str] = []
        self.done = threading.Event()

    def launch(self, job_name, *, tags, run_config=None, asset_keys=None, check_names=()) -> str:
        self.launched.append((job_name, dict(tags), dict(run_config or {}), asset_keys))
        self.done.set()
        return f"run-{len(self.launched)}"

    def cancel(self, run_id: str) -> bool:
        self.cancelled.append(run_id)
        return True
