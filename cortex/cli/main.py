"""The `cortex` command: serve, status, models, load, unload, up."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from cortex.common.configfile import ConfigError

DEFAULT_URL = "http://127.0.0.1:31313"


def _client_args(parser: argparse.ArgumentParser, admin: bool = False) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("CORTEX_URL", DEFAULT_URL),
        help="gateway URL (env CORTEX_URL)",
    )
    env = "CORTEX_ADMIN_KEY" if admin else "CORTEX_API_KEY"
    parser.add_argument("--key", default=os.environ.get(env), help=f"API key (env {env})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cortex", description="LLM fleet gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("-c", "--config", default="/etc/cortex/cortex.toml")
    serve.add_argument("--log-level", default="info")
    status = sub.add_parser("status", help="nodes, devices, models and in-flight requests")
    _client_args(status)
    status.add_argument("--json", action="store_true")
    models = sub.add_parser("models", help="the merged model catalogue")
    _client_args(models)
    models.add_argument("--json", action="store_true")
    for name in ("load", "unload"):
        cmd = sub.add_parser(name, help=f"{name} a model (admin)")
        cmd.add_argument("model")
        cmd.add_argument("--node")
        _client_args(cmd, admin=True)
    up = sub.add_parser("up", help="a local neuron with the demo model and a gateway in front")
    up.add_argument("--models-dir", default="models")
    up.add_argument("--port", type=int, default=31313)
    up.add_argument("--metrics-port", type=int, default=31314)
    up.add_argument("--neuron-port", type=int, default=13131)
    return parser.parse_args(argv)


def request(args: argparse.Namespace, method: str, path: str, body: dict | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(args.url.rstrip("/") + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if args.key:
        req.add_header("Authorization", f"Bearer {args.key}")
    try:
        with urllib.request.urlopen(req, timeout=900) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        raise SystemExit(f"cortex: {method} {path}: {exc.code} {message}") from None
    except urllib.error.URLError as exc:
        raise SystemExit(f"cortex: cannot reach {args.url}: {exc.reason}") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command in ("serve", "up"):
        level = getattr(args, "log_level", "info").upper()
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        from cortex.config import load_settings
        from cortex.server import serve

        try:
            settings = load_settings(args.config)
        except ConfigError as err:
            print(f"cortex: {err}", file=sys.stderr)
            return 2
        serve(settings)
        return 0
    if args.command == "up":
        from cortex.cli.up import up

        return up(args.models_dir, args.port, args.metrics_port, args.neuron_port)
    from cortex.cli.status import render_models, render_status

    if args.command == "status":
        fleet = request(args, "GET", "/fleet")
        print(json.dumps(fleet, indent=2) if args.json else render_status(fleet))
    elif args.command == "models":
        models = request(args, "GET", "/v1/models")["data"]
        print(json.dumps(models, indent=2) if args.json else render_models(models))
    else:
        body = {"model": args.model, **({"node": args.node} if args.node else {})}
        answer = request(args, "POST", f"/admin/models/{args.command}", body)
        where = answer.get("node") or ",".join(answer.get("nodes", []))
        print(f"{answer['model']}: {answer['status']} on {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
