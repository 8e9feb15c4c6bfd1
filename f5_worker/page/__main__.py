"""usage: python -m f5_worker.page --endpoint URL [--kind auto|queue|http] [--host HOST] [--port PORT]

Serves the page that speaks a text and lights each word as it is said (docs/page.md) on this machine, and
forwards its calls to a deployed endpoint, with the API key from the environment variable RUNPOD_API_KEY
(the browser never sees the key). Open http://HOST:PORT/ once it says it is serving.

  --endpoint URL   a queue endpoint, https://api.runpod.ai/v2/<endpoint id>, or a load-balancing endpoint,
                   https://<endpoint id>.api.runpod.ai (any worker run with SERVE=http works too)
  --kind KIND      auto (default): a URL ending in /v2/<id> is a queue endpoint, any other is served over
                   HTTP; queue: a queue endpoint at any URL (runpod's local API server, --rp_serve_api)
  --host HOST      the address it listens on (default 127.0.0.1: this machine only; the key is used for
                   anyone who can reach it)
  --port PORT      its port (default 8000)
  -h, --help       print this and exit

Changes: nothing on this machine; it listens until stopped (Ctrl-C). Every call it forwards runs on the
endpoint, and is billed there.
"""

from __future__ import annotations

import argparse
import logging
import sys
from urllib.parse import urlsplit

from f5_worker import logs
from f5_worker.config import SettingsError, get_settings
from f5_worker.page.forward import KINDS, Endpoint, create_app

DEFAULT_PORT = 8000

log = logging.getLogger("f5_worker.page")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m f5_worker.page", add_help=False)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--kind", default="auto", choices=("auto", *KINDS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("-h", "--help", action="store_true")
    parser.format_usage = lambda: __doc__.splitlines()[0] + "\n"
    args = parser.parse_args(argv)
    if args.help:
        print(__doc__.strip())
        return 0
    logs.configure("INFO", sys.stderr)
    try:
        key = get_settings().runpod_api_key
        endpoint = Endpoint.parse(args.endpoint, args.kind, key)
    except (SettingsError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        return 2
    if key is None and (urlsplit(endpoint.url).hostname or "").endswith("runpod.ai"):
        log.warning("RUNPOD_API_KEY is not set: RunPod will refuse every call")
    import uvicorn

    log.info("serving the page at http://%s:%d/ for the %s endpoint %s", args.host, args.port,
             endpoint.kind, endpoint.url)
    uvicorn.run(create_app(endpoint), host=args.host, port=args.port, log_config=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
