"""``crm-pipelines``: syncs, exports, their state, the simulators and the demo from one command.

Every command prints one clear line on error and exits non-zero; tracebacks are kept for
``--debug``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from crm_pipelines.cli import demo, initialize, integrations, jobs, mapping, operations, report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crm-pipelines", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True)
    operations.add_parsers(sub)
    integrations.add_parsers(sub, operations.common_arguments)
    demo.add_parsers(sub)
    initialize.add_parsers(sub)
    jobs.add_parsers(sub, operations.common_arguments)
    report.add_parsers(sub, operations.common_arguments)
    mapping.add_parsers(sub, operations.common_arguments)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "httpcore", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"crm-pipelines {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
