"""The production deployment's two processes (webserver and daemon) and its GraphQL API, shared by
the end-to-end test and ``benchmarks/production.py``."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import httpx

REPO = Path(__file__).resolve().parents[2]
LOCATION, REPOSITORY = "crm_pipelines", "__repository__"


class GraphQLError(RuntimeError):
    """The webserver answered a GraphQL request with errors, or with a failure result."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str, processes: list[subprocess.Popen] = ()) -> object:
    """Poll ``predicate`` until it returns something true; fail early when one of ``processes`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc in processes:
            if proc.poll() is not None:
                raise AssertionError(f"{proc.args[2]} exited with {proc.returncode} while waiting for {what}")
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


@contextmanager
def running_dagster(env: dict[str, str], logs: Path, stop: Callable[[subprocess.Popen], object]) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """The webserver and the daemon, each in its own process group, on the repository's workspace;
    yields the webserver's URL once it answers. ``stop`` ends one process group on exit."""
    port = free_port()
    workspace = str(REPO / "workspace.yaml")
    processes = [
        subprocess.Popen([sys.executable, "-m", "dagster_webserver", "-w", workspace, "-h", "127.0.0.1", "-p", str(port)],
                         cwd=REPO, env=env, stdout=open(logs / "webserver.log", "w"), stderr=subprocess.STDOUT, start_new_session=True),
        subprocess.Popen([sys.executable, "-m", "dagster._daemon", "run", "-w", workspace],
                         cwd=REPO, env=env, stdout=open(logs / "daemon.log", "w"), stderr=subprocess.STDOUT, start_new_session=True),
    ]
    url = f"http://127.0.0.1:{port}"

    def webserver_up() -> bool:
        try:
            return httpx.get(f"{url}/server_info", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        try:
            wait_until(webserver_up, 180, "the webserver", processes)
        except AssertionError:
            print((logs / "webserver.log").read_text()[-5000:])
            raise
        yield url, processes
    finally:
        for proc in processes:
            stop(proc)


def graphql(url: str, query: str, variables: dict) -> dict:
    response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=60)
    if response.status_code != 200:
        raise GraphQLError(f"GraphQL answered {response.status_code}: {response.text[:2000]}")
    body = response.json()
    if "errors" in body:
        raise GraphQLError(str(body["errors"]))
    return body["data"]


def launch_backfill(url: str, partitions: list[str], assets: list[list[str]]) -> str:
    """A partition backfill of ``assets``, launched as the asset page does; returns its id."""
    data = graphql(url, """
        mutation($params: LaunchBackfillParams!) {
          launchPartitionBackfill(backfillParams: $params) {
            __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
          }
        }""", {"params": {"partitionNames": partitions, "assetSelection": [{"path": p} for p in assets]}})
    result = data["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise GraphQLError(f"backfill failed to launch: {result}")
    return result["backfillId"]


def launch_run(url: str, job: str, run_config: dict, tags: dict[str, str]) -> str:
    data = graphql(url, """
        mutation($p: ExecutionParams!) {
          launchRun(executionParams: $p) {
            __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
          }
        }""", {"p": {"selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": job},
                     "runConfigData": run_config, "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]}}})
    result = data["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        raise GraphQLError(f"launch of {job} failed: {result}")
    return result["run"]["runId"]


def start_schedule(url: str, name: str) -> None:
    data = graphql(url, """
        mutation($selector: ScheduleSelector!) {
          startSchedule(scheduleSelector: $selector) { __typename ... on PythonError { message } }
        }""", {"selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "scheduleName": name}})
    if data["startSchedule"]["__typename"] != "ScheduleStateResult":
        raise GraphQLError(f"schedule {name} did not start: {data}")
