"""`rlvr serve --config FILE [--host H] [--port P]`: the rollout engine behind an OpenAI-compatible endpoint
(`/v1/models`, `/v1/chat/completions`, `/v1/completions`; rlvr.serve), sampling from the policy of the config's
`model` section with its `rollout` settings (engine, weights form; `max_new_tokens` is the default max_tokens)."""

from __future__ import annotations

import argparse
import json


def handle(args: argparse.Namespace) -> int:
    from rlvr.config import load_config
    from rlvr.extras import import_extra
    from rlvr.serve import build_server
    from rlvr.serve.app import create_app

    uvicorn = import_extra("uvicorn", "rlvr serve", "serve")
    cfg = load_config(args.config, args.set)
    server = build_server(cfg, model_name=args.model_name, max_batch=args.max_batch)
    print(json.dumps({"model": server.model_name, "url": f"http://{args.host}:{args.port}/v1"}), flush=True)
    try:
        uvicorn.run(create_app(server), host=args.host, port=args.port, log_level=args.log_level)
    finally:
        server.close()
    return 0


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the policy behind an OpenAI-compatible endpoint (token ids, log-probs)",
                       description=__doc__)
    p.add_argument("--config", "-c", required=True, help="YAML recipe (its model and rollout sections)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one value, e.g. --set model.path=DIR (repeatable)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--model-name", default=None, help="the name clients ask for (default: the model directory's)")
    p.add_argument("--max-batch", type=int, default=64, help="prompts per engine call when requests are batched")
    p.add_argument("--log-level", default="info", help="uvicorn's log level")
    p.set_defaults(func=handle)
