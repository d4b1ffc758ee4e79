"""`neuron serve -c neuron.toml` and `neuron fetch-demo --models-dir DIR`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from neuron.config import ConfigError, load


def _serve(args: argparse.Namespace) -> int:
    try:
        config = load(args.config)
    except ConfigError as err:
        print(f"neuron: bad configuration: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s",
    )
    from neuron.daemon import serve  # torch is imported only once the config is good

    return asyncio.run(serve(config))


def _fetch_demo(args: argparse.Namespace) -> int:
    from neuron.demo import DEMO_MODEL_ID, fetch_demo

    path = fetch_demo(Path(args.models_dir))
    print(f"{DEMO_MODEL_ID} -> {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="neuron", description="the cortex per-node daemon")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("-c", "--config", required=True, help="path of neuron.toml (or .yaml)")
    serve.set_defaults(run=_serve)
    fetch = commands.add_parser("fetch-demo", help="put the demo GGUF into a models_dir")
    fetch.add_argument("--models-dir", required=True, help="the models_dir of neuron.toml")
    fetch.set_defaults(run=_fetch_demo)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
