"""What ``--async`` needs before it hands a run to Dagster, checked up front with one-line messages.

A queued run is validated by ``dagster job launch`` in this shell: it needs the Dagster instance
the daemon watches (``$DAGSTER_HOME``) and every environment variable the provider's resource
reads. Under ``crm-pipelines dev`` both exist only inside ``dev``; it writes them to
``$DAGSTER_HOME/dev.env`` for other shells.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The file ``crm-pipelines dev`` writes in its Dagster home: the settings it gives its own processes.
DEV_ENV_FILE = "dev.env"


def dev_env_hint(home: str | None) -> str:
    """How to load dev's settings in this shell, if a running ``dev`` left them in ``home``."""
    for folder in [p for p in (home, str(Path.cwd() / ".dagster_home")) if p]:
        if (Path(folder) / DEV_ENV_FILE).exists():
            return f"; if `crm-pipelines dev` is running, load its settings with: source {Path(folder) / DEV_ENV_FILE}"
    return ""


def check_async_launch(provider: str) -> None:
    """Raise ValueError with a one-line message when a launch through Dagster would fail."""
    from crm_pipelines.integrations.registry import missing_env_vars

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise ValueError("--async queues a run on the Dagster instance the daemon watches: set DAGSTER_HOME to its folder "
                         "(`crm-pipelines dev` uses ./.dagster_home: export DAGSTER_HOME=$PWD/.dagster_home), or drop --async"
                         + dev_env_hint(None))
    if not Path(home).is_dir():
        raise ValueError(f"DAGSTER_HOME={home} is not a folder; point it at the Dagster instance the daemon watches, or drop --async")
    missing = missing_env_vars(provider)
    if missing:
        raise ValueError(f"--async launches through Dagster, which reads {', '.join(missing)} from this shell's environment: "
                         "set them as the daemon has them" + (dev_env_hint(home) or ", or drop --async to run here"))
