"""Run a provider simulator in the foreground.

    python -m crm_pipelines.simulator hubspot --port 8765 --contacts 10000 --companies 1000 \\
        --deals 2000 --seed 1 --rate-limit 100 --token TOKEN

The first line printed on stdout is the base URL. SIGINT or SIGTERM stops the server cleanly.
Providers plug in through :data:`SIMULATORS` ("module:Class" strings, imported on demand); each
class supplies ``add_cli_arguments`` and ``from_cli_args``.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Sequence

from crm_pipelines.simulator.server import FaultConfig, SimulatorBase

SIMULATORS: dict[str, str] = {
    "hubspot": "crm_pipelines.providers.hubspot.simulator:HubSpotSimulator",
    "salesforce": "crm_pipelines.providers.salesforce.simulator:SalesforceSimulator",
    "pipedrive": "crm_pipelines.providers.pipedrive.simulator:PipedriveSimulator",
    "bling": "crm_pipelines.providers.bling.simulator:BlingSimulator",
    "shopify": "crm_pipelines.providers.shopify.simulator:ShopifySimulator",
    "gestaoclick": "crm_pipelines.providers.gestaoclick.simulator:GestaoClickSimulator",
}

PROG = "python -m crm_pipelines.simulator"

#: The fault-injection options every simulator takes -> the :class:`FaultConfig` field each sets.
FAULT_OPTIONS = {"--fault-seed": "seed", "--fault-429": "rate_429", "--fault-5xx": "rate_5xx", "--fault-reset": "rate_reset",
                 "--fault-truncated": "rate_truncated", "--fault-slow": "rate_slow", "--slow-seconds": "slow_seconds"}


def load_simulator_class(provider: str) -> type[SimulatorBase]:
    """Import the simulator class registered for ``provider``."""
    module_name, _, class_name = SIMULATORS[provider].partition(":")
    simulator_class = getattr(importlib.import_module(module_name), class_name)
    if not issubclass(simulator_class, SimulatorBase):
        raise TypeError(f"{SIMULATORS[provider]} is not a SimulatorBase")
    return simulator_class


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every simulator understands: address, seed, tokens and fault injection."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--token", action="append", help="accepted access token (repeatable)")
    faults = parser.add_argument_group("fault injection (probabilities per API request)")
    for option, name in FAULT_OPTIONS.items():
        default = getattr(FaultConfig, name)
        faults.add_argument(option, type=type(default), default=default)


def fault_config_from_args(args: argparse.Namespace) -> FaultConfig:
    config = FaultConfig(**{name: getattr(args, option[2:].replace("-", "_")) for option, name in FAULT_OPTIONS.items()})
    config.validate()
    return config


def _usage() -> str:
    return f"usage: {PROG} {{{','.join(sorted(SIMULATORS))}}} [options]  (add --help after the provider for its options)"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, serve until SIGINT/SIGTERM, return the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or args_list[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args_list else 2
    provider = args_list[0]
    if provider not in SIMULATORS:
        print(f"unknown provider {provider!r}\n{_usage()}", file=sys.stderr)
        return 2
    simulator_class = load_simulator_class(provider)
    parser = argparse.ArgumentParser(prog=f"{PROG} {provider}")
    add_common_arguments(parser)
    simulator_class.add_cli_arguments(parser)
    args = parser.parse_args(args_list[1:])
    try:
        args.faults = fault_config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop.set())

    simulator = simulator_class.from_cli_args(args)
    simulator.start()
    try:
        print(simulator.base_url, flush=True)
        print(f"{provider} simulator ready; stop with Ctrl-C", file=sys.stderr, flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
