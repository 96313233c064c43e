"""``python -m crm_pipelines.webhooks --host 127.0.0.1 --port 8787``: serve the webhook receiver."""

from __future__ import annotations

import argparse
import gc
import logging

import uvicorn

from crm_pipelines.webhooks.app import app_from_env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m crm_pipelines.webhooks", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = app_from_env()
    # Objects made at start-up live as long as the process: keep them out of the collector's
    # full passes, which would otherwise show up as pauses in acknowledgement times.
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, proxy_headers=False)


if __name__ == "__main__":
    main()
