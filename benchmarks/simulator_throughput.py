"""Requests per second each provider simulator serves, two source trees side by side.

Each simulator runs in its own process (``python -m crm_pipelines.simulator <provider>``, limits
off or out of reach, no faults) from each tree; one client process (this one) keeps ``--connections``
keep-alive connections (1 by default: a sync client reads one page after the other) busy for
``--seconds`` with one request shape at a time: a list page as a sync reads it, and one record by id.
Besides requests per second it prints the simulator process's CPU time per request (from /proc),
which a loaded machine disturbs less than wall-clock rates. Runs alternate between the trees; the figure is the median of
``--runs`` (3) runs, printed with the load average before and after.

Usage: ``python benchmarks/simulator_throughput.py [--baseline /work/main] [--candidate .]
[--providers hubspot,...] [--records 5000]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"
SECRET = "bench-secret"
QUERY = "SELECT Id, FirstName, LastName, Email, SystemModstamp FROM Contact ORDER BY SystemModstamp LIMIT 200"
GRAPHQL_PAGE = "{ customers(first: 50) { nodes { id email firstName lastName updatedAt } pageInfo { hasNextPage endCursor } } }"
GRAPHQL_ONE = "query($id: ID!) { customer(id: $id) { id email firstName lastName updatedAt } }"

#: provider -> (command-line options, auth headers)
PROVIDERS: dict[str, tuple[list[str], dict[str, str]]] = {
    "hubspot": (["--contacts", "{n}", "--companies", "0", "--deals", "0", "--no-rate-limits"], {"Authorization": f"Bearer {TOKEN}"}),
    "salesforce": (["--contacts", "{n}", "--companies", "0", "--deals", "0", "--daily-api-limit", "0"], {"Authorization": f"Bearer {TOKEN}"}),
    "pipedrive": (["--persons", "{n}", "--organizations", "0", "--deals", "0", "--no-rate-limits"], {"x-api-token": TOKEN}),
    "shopify": (["--customers", "{n}", "--orders", "0", "--companies", "0", "--no-rate-limits"], {"X-Shopify-Access-Token": TOKEN}),
    "bling": (["--contacts", "{n}", "--companies", "0", "--deals", "0", "--per-second", "100000000", "--daily-limit", "1000000000"],
              {"Authorization": f"Bearer {TOKEN}"}),
    "gestaoclick": (["--contacts", "{n}", "--companies", "0", "--deals", "0", "--no-rate-limits", "--secret", SECRET],
                    {"access-token": TOKEN, "secret-access-token": SECRET}),
}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def simulator(tree: Path, provider: str, records: int):
    options = [o.replace("{n}", str(records)) for o in PROVIDERS[provider][0]]
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, "-m", "crm_pipelines.simulator", provider, "--seed", "3", "--token", TOKEN, *options]
    process = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        base_url = process.stdout.readline().strip() if process.stdout else ""
        if not base_url.startswith("http"):
            raise RuntimeError(f"{provider} simulator from {tree} did not start")
        yield base_url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def request_shapes(provider: str, base_url: str) -> dict[str, tuple[str, str, bytes]]:
    """shape -> (method, target, body), the record id looked up through the API."""
    headers = PROVIDERS[provider][1]
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        if provider == "hubspot":
            first = client.get("/crm/v3/objects/contacts", params={"limit": 1}).json()["results"][0]["id"]
            return {"page": ("GET", "/crm/v3/objects/contacts?limit=100", b""), "one": ("GET", f"/crm/v3/objects/contacts/{first}", b"")}
        if provider == "salesforce":
            page = f"/services/data/v66.0/query?q={quote(QUERY)}"
            first = client.get(page).json()["records"][0]["Id"]
            return {"page": ("GET", page, b""), "one": ("GET", f"/services/data/v66.0/sobjects/Contact/{first}", b"")}
        if provider == "pipedrive":
            first = client.get("/api/v2/persons", params={"limit": 1}).json()["data"][0]["id"]
            return {"page": ("GET", "/api/v2/persons?limit=100", b""), "one": ("GET", f"/api/v2/persons/{first}", b"")}
        if provider == "shopify":
            url = "/admin/api/2025-01/graphql.json"
            first = client.post(url, json={"query": GRAPHQL_PAGE}).json()["data"]["customers"]["nodes"][0]["id"]
            one = json.dumps({"query": GRAPHQL_ONE, "variables": {"id": first}}).encode()
            return {"page": ("POST", url, json.dumps({"query": GRAPHQL_PAGE}).encode()), "one": ("POST", url, one)}
        if provider == "bling":
            first = client.get("/Api/v3/contatos", params={"limite": 1}).json()["data"][0]["id"]
            return {"page": ("GET", "/Api/v3/contatos?pagina=1&limite=100", b""), "one": ("GET", f"/Api/v3/contatos/{first}", b"")}
        first = client.get("/clientes").json()["data"][0]["id"]
        return {"page": ("GET", "/clientes?pagina=1", b""), "one": ("GET", f"/clientes/{first}", b"")}


async def _connection(host: str, port: int, payload: bytes, deadline: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            writer.write(payload)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            counts[0 if status == 200 else 1] += 1
    finally:
        writer.close()


def measure(base_url: str, pid: int, headers: dict[str, str], shape: tuple[str, str, bytes], seconds: float, connections: int) -> tuple[float, float]:
    """(requests per second, simulator CPU milliseconds per request)."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    method, target, body = shape
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    payload = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    counts = [0, 0]
    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()

    async def run() -> None:
        await asyncio.gather(*(_connection(host, int(port), payload, started + seconds, counts) for _ in range(connections)))

    asyncio.run(run())
    elapsed, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu_before
    if counts[1]:
        raise RuntimeError(f"{counts[1]} answers were not 200 for {method} {target}")
    return counts[0] / elapsed, cpu * 1000 / max(counts[0], 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, default=Path("/work/main"), help="source tree to compare against")
    parser.add_argument("--candidate", type=Path, default=ROOT, help="source tree measured")
    parser.add_argument("--providers", default=",".join(PROVIDERS))
    parser.add_argument("--records", type=int, default=5000, help="contacts in each simulator")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one run")
    parser.add_argument("--connections", type=int, default=1, help="keep-alive connections of the client")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    trees = {"baseline": args.baseline.resolve(), "candidate": args.candidate.resolve()}
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.records:,} records, {args.connections} connections, "
          f"{args.seconds:g} s per run, median of {args.runs}")
    print(f"baseline  = {trees['baseline']}\ncandidate = {trees['candidate']}")
    print(f"{'provider':<12} {'request':<6} {'baseline req/s':>15} {'candidate req/s':>16} {'ratio':>7} {'baseline CPU ms':>16} {'candidate CPU ms':>17}")
    for provider in args.providers.split(","):
        figures: dict[str, dict[str, list[tuple[float, float]]]] = {"baseline": {}, "candidate": {}}
        with simulator(trees["baseline"], provider, args.records) as old, simulator(trees["candidate"], provider, args.records) as new:
            servers = {"baseline": old, "candidate": new}
            shapes = {name: request_shapes(provider, url) for name, (url, _) in servers.items()}
            for _ in range(args.runs):
                for name in ("baseline", "candidate"):
                    for shape, request in shapes[name].items():
                        figures[name].setdefault(shape, []).append(measure(*servers[name], PROVIDERS[provider][1], request, args.seconds, args.connections))
        for shape in ("page", "one"):
            (old_rate, old_cpu), (new_rate, new_cpu) = ([statistics.median(f[i] for f in figures[name][shape]) for i in (0, 1)] for name in ("baseline", "candidate"))
            print(f"{provider:<12} {shape:<6} {old_rate:>15,.0f} {new_rate:>16,.0f} {new_rate / old_rate:>7.2f} {old_cpu:>16.3f} {new_cpu:>17.3f}", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
