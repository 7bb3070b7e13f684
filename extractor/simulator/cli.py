"""``twelvetwenty simulate``: serve an offline 12Twenty API until interrupted.

For the demo, for trying the extractor without a school's key, and for tests that need a
simulator in another process. It prints where it listens, the API key it generated and a
curl example; with ``--json`` the first stdout line is one JSON object
``{"base_url", "api_key", "ca_file"}``, printed only once the socket is listening, so a
parent process can read one line and start. SIGINT and SIGTERM stop it cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import tempfile
from pathlib import Path

from extractor.clock import SystemClock
from extractor.simulator.config import FAULT_KINDS, SimConfig, generate_api_key, spread_fault_rate
from extractor.simulator.entities import BY_NAME
from extractor.simulator.server import RunningSimulator, serve

DEFAULT_PORT = 8443
DEFAULT_LATENCY = 0.15
DEFAULT_JITTER = 0.10


def _rows(text: str) -> tuple[str, int]:
    name, sep, count = text.partition("=")
    if not sep or name not in BY_NAME:
        raise argparse.ArgumentTypeError(
            f"expected ENTITY=N with ENTITY one of {', '.join(BY_NAME)}, not {text!r}"
        )
    try:
        return name, int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"row count must be an integer: {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the simulate command's flags (every SimConfig knob has one)."""
    parser.epilog = (
        "Simulator-only endpoints (no auth, not counted, not limited): GET /_sim/ledger "
        "(requests by route and status, per day, max in flight, faults, pages) and "
        'POST /_sim/mutate {"entity": "students", "modify": 10, "add": 5, "delete": 2}. '
        "Faults apply to every counted route, the token route included."
    )
    net = parser.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    net.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port, 0 = any free (default %(default)s)"
    )
    net.add_argument("--tls", action="store_true", help="serve HTTPS with a throwaway CA")
    net.add_argument(
        "--tls-dir",
        type=Path,
        metavar="DIR",
        help="keep the CA certificate in DIR; implies --tls (default: a temporary dir removed on exit)",
    )
    net.add_argument(
        "--json",
        action="store_true",
        help='first stdout line: {"base_url", "api_key", "ca_file"} once listening',
    )

    data = parser.add_argument_group("data")
    data.add_argument(
        "--seed", type=int, default=1, metavar="N", help="data seed (default %(default)s)"
    )
    data.add_argument(
        "--scale",
        type=float,
        default=1.0,
        metavar="X",
        help="row-count multiplier; 1 = a mid-sized school (default %(default)s)",
    )
    data.add_argument(
        "--rows",
        type=_rows,
        action="append",
        default=[],
        metavar="ENTITY=N",
        help="exact row count for one entity, repeatable (e.g. --rows students=500)",
    )
    data.add_argument(
        "--api-key",
        metavar="KEY",
        help="use this API key instead of a random one (printed at startup)",
    )

    timing = parser.add_argument_group("timing and limits")
    timing.add_argument(
        "--latency",
        type=float,
        default=DEFAULT_LATENCY,
        metavar="SECONDS",
        help="fixed delay per admitted request (default %(default)s)",
    )
    timing.add_argument(
        "--latency-jitter",
        type=float,
        default=DEFAULT_JITTER,
        metavar="SECONDS",
        help="extra uniform random delay, 0..S (default %(default)s)",
    )
    timing.add_argument(
        "--daily-limit",
        type=int,
        default=5000,
        metavar="N",
        help="requests per UTC day (default %(default)s)",
    )
    timing.add_argument(
        "--max-concurrency",
        type=int,
        default=3,
        metavar="N",
        help="requests in flight before 429 (default %(default)s)",
    )
    timing.add_argument(
        "--token-lifetime",
        type=float,
        default=24 * 3600.0,
        metavar="SECONDS",
        help="token validity (default %(default)s = 24 h)",
    )
    timing.add_argument(
        "--token-format",
        choices=("plain", "json"),
        default="plain",
        help="token body: raw text (what the API sends) or a JSON string (default %(default)s)",
    )
    timing.add_argument(
        "--retry-after",
        type=int,
        metavar="SECONDS",
        help="add Retry-After to 429s (the real API sends none)",
    )

    faults = parser.add_argument_group("faults (probabilities per request, exclusive)")
    faults.add_argument(
        "--fault-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="total fault probability spread over 429/500/502/503/reset/truncate/garble",
    )
    for kind in FAULT_KINDS:
        faults.add_argument(
            f"--p-{kind}",
            type=float,
            metavar="P",
            help=_FAULT_HELP[kind] + " (overrides --fault-rate for this kind)",
        )
    faults.add_argument(
        "--slow-seconds",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how long a slow response takes (default %(default)s)",
    )
    faults.add_argument(
        "--fault-seed", type=int, default=0, metavar="N", help="seed of fault and jitter draws"
    )


_FAULT_HELP = {
    "429": "answer 429 Too many requests",
    "500": "answer 500 (JSON error)",
    "502": "answer 502 (gateway HTML)",
    "503": "answer 503 (gateway HTML)",
    "reset": "close the connection without a response",
    "truncate": "send the full Content-Length but half the body, then close",
    "garble": "answer 200 with a body of the right length that is not JSON",
    "slow": "dribble the body over --slow-seconds",
}


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The SimConfig the flags describe."""
    p = spread_fault_rate(args.fault_rate)
    for kind in FAULT_KINDS:
        value = getattr(args, f"p_{kind}")
        if value is not None:
            p[f"p_{kind}"] = value
    return SimConfig(
        seed=args.seed,
        scale=args.scale,
        rows=dict(args.rows) or None,
        api_key=args.api_key or generate_api_key(),
        token_lifetime=args.token_lifetime,
        token_format=args.token_format,
        latency=args.latency,
        latency_jitter=args.latency_jitter,
        max_concurrency=args.max_concurrency,
        daily_limit=args.daily_limit,
        p_429=p["p_429"],
        p_500=p["p_500"],
        p_502=p["p_502"],
        p_503=p["p_503"],
        p_reset=p["p_reset"],
        p_truncate=p["p_truncate"],
        p_slow=p.get("p_slow", 0.0),
        slow_seconds=args.slow_seconds,
        fault_seed=args.fault_seed,
        retry_after=args.retry_after,
    )


def _announce(running: RunningSimulator, ca_file: Path | None, as_json: bool) -> None:
    if as_json:
        line = {
            "base_url": running.base_url,
            "api_key": running.api_key,
            "ca_file": str(ca_file) if ca_file else None,
        }
        print(json.dumps(line), flush=True)
        print(f"simulator listening on {running.base_url}", file=sys.stderr, flush=True)
        return
    url, key = running.base_url, running.api_key
    curl = f"curl --cacert {ca_file}" if ca_file else "curl"
    lines = [
        f"12Twenty simulator listening on {url}",
        f"API key: {key}",
    ]
    if ca_file:
        lines += [
            f"CA certificate: {ca_file}",
            f"  trust it with: curl --cacert {ca_file} ...  or  SSL_CERT_FILE={ca_file} ...",
        ]
    lines += [
        "Try:",
        f"  TOKEN=$({curl} -s '{url}/api/client/generateAuthenticationToken?key={key}')",
        f"  {curl} -s -H \"Authorization: Bearer $TOKEN\" '{url}/api/v2/students?PageSize=5'",
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)


async def _serve(args: argparse.Namespace, config: SimConfig, tls_dir: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    ssl_context, ca_file = None, None
    if tls_dir is not None:
        from extractor.simulator.tls import make_test_ca

        ssl_context, ca_file = make_test_ca(tls_dir)
    try:
        async with serve(
            config, clock=SystemClock(), ssl_context=ssl_context, host=args.host, port=args.port
        ) as running:
            # Render every entity's templates before announcing: the first page then costs
            # what every page costs, so benchmarks time the client, not the warm-up.
            running.sim.data.warm()
            _announce(running, ca_file, args.json)
            await stop.wait()
            total = running.sim.ledger.total
            print(f"simulator stopped after {total} requests", file=sys.stderr, flush=True)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop."""
    config = config_from_args(args)
    with contextlib.ExitStack() as stack:
        tls_dir: Path | None = None
        if args.tls or args.tls_dir:
            if args.tls_dir is not None:
                tls_dir = args.tls_dir
            else:
                tls_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        asyncio.run(_serve(args, config, tls_dir))
    return 0
