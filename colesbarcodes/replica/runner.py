"""Start the replica from the command line or from code (``python -m colesbarcodes.replica``).

With ``--port 0`` the OS picks a free port; once listening, the server prints exactly one line,
``http://HOST:PORT``, to stdout and flushes it, so a test can start it as a subprocess and read
where it is (the pattern of Scrapy's own mock server). Nothing else goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from typing import TYPE_CHECKING

from aiohttp import web

from .catalogue import Catalogue
from .server import (
    BLOCK_STATUSES,
    BREAKS,
    DEFAULT_API_KEY,
    DEFAULT_BUILD_ID,
    LAYOUTS,
    ReplicaConfig,
    make_app,
)
from .woolworths import PREFIX as WOOLWORTHS_PREFIX
from .woolworths import WoolworthsConfig

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "build_parser",
    "config_from_args",
    "main",
    "run",
    "serve",
    "woolworths_config_from_args",
]


async def serve(
    catalogue: Catalogue,
    config: ReplicaConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    woolworths: WoolworthsConfig | None = None,
) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM); ``ready(url)`` once listening."""
    app = make_app(catalogue, config, woolworths)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
        await site.start()
        bound_port = port
        for address in runner.addresses:
            if isinstance(address, tuple):
                bound_port = int(address[1])
                break
        shown_host = f"[{host}]" if ":" in host else host
        url = f"http://{shown_host}:{bound_port}"
        stop = stop if stop is not None else asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        if ready is not None:
            ready(url)
        await stop.wait()
    finally:
        await runner.cleanup()


def run(
    host: str = "127.0.0.1",
    port: int = 0,
    catalogue: Catalogue | None = None,
    config: ReplicaConfig | None = None,
    woolworths: WoolworthsConfig | None = None,
) -> None:
    """Serve (blocking) and print the URL line to stdout once listening."""
    catalogue = catalogue if catalogue is not None else Catalogue.generate(1000, seed=1)

    def announce(url: str) -> None:
        sys.stdout.write(url + "\n")
        sys.stdout.flush()

    asyncio.run(serve(catalogue, config, host, port, ready=announce, woolworths=woolworths))


def _whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` (to ``high``), or a usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            limits = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: give {limits}")
        return value

    return parse


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps help as usual but keeps explicit line breaks (``--break``: one line per mode)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        lines: list[str] = []
        for part in text.split("\n"):
            lines += super()._split_lines(part, width)
        return lines


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """Command-line options; another CLI can reuse them through :func:`main`."""
    parser = argparse.ArgumentParser(
        prog=prog or "python -m colesbarcodes.replica",
        formatter_class=_HelpFormatter,
        description=(
            "Offline replica of the Coles site (home page, GraphQL GetProductDetails and "
            "GetShopProductsMenu, product pages, listings, robots.txt), as in late 2026 or "
            "(--layout 2024) as in 2024, for tests, benchmarks and demos. Prints one line, "
            "http://HOST:PORT, once listening. Control it at runtime with "
            "POST /__replica__/config (JSON), GET /__replica__/stats, "
            "POST /__replica__/reset-stats and POST /__replica__/revoke-cookies. Woolworths "
            f"(category tree, listing API, Akamai's block) is served under {WOOLWORTHS_PREFIX}/ "
            f"with its own {WOOLWORTHS_PREFIX}/__replica__/config and /stats."
        ),
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    add(
        "--port",
        type=_whole_number(0, 65535),
        default=0,
        help="port; 0 picks a free one (default: %(default)s)",
    )
    source = parser.add_argument_group("catalogue")
    source.add_argument(
        "--products",
        type=_whole_number(0),
        default=1000,
        help="generate N products (default: %(default)s)",
    )
    source.add_argument("--seed", type=int, default=1, help="generator seed (default: %(default)s)")
    source.add_argument(
        "--start-sku",
        type=_whole_number(1),
        default=1_000_000,
        help="first SKU (default: %(default)s)",
    )
    source.add_argument(
        "--catalogue",
        metavar="FILE.jsonl",
        help='read products from JSON lines {"sku", "name", "brand", "size", "price", "gtin", '
        '"unknown", "category"} instead of generating them',
    )
    source.add_argument(
        "--export",
        metavar="FILE.jsonl",
        help="write the catalogue as JSON lines (with the gtin each SKU answers) and exit",
    )
    behave = parser.add_argument_group("behaviour (all changeable later via /__replica__/config)")
    behave.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="2026",
        help="the site as in late 2026 (key in window.__RUNTIME_CONFIG__, no GraphQL URL "
        "published, productCategories in GraphQL, Incapsula cookies, JSON-LD gtin) or as in "
        "2024 (key and GraphQL URL in __NEXT_DATA__.runtimeConfig, reese84) "
        "(default: %(default)s)",
    )
    behave.add_argument(
        "--challenge",
        action="store_true",
        help="JavaScript bot check: content answers the 'Pardon Our Interruption' page until "
        "the client holds the token only running the page's script yields (2026: in an "
        "incap_ses_* cookie next to visid_incap_*; 2024: in reese84)",
    )
    behave.add_argument(
        "--block-clients",
        action="append",
        default=[],
        metavar="ADDR[,ADDR...]",
        help="client addresses answered with Incapsula's block page for every request "
        "(before any challenge; repeatable)",
    )
    behave.add_argument(
        "--block-status",
        type=int,
        choices=BLOCK_STATUSES,
        default=200,
        help="HTTP status of the block page (default: %(default)s)",
    )
    behave.add_argument(
        "--max-aliases",
        type=int,
        default=0,
        metavar="N",
        help="refuse (400 QUERY_TOO_COMPLEX) GraphQL documents asking for more than N "
        "products (default: 0, no limit)",
    )
    behave.add_argument(
        "--rotate-key-after",
        type=int,
        default=0,
        metavar="N",
        help="change the subscription key after N GraphQL requests accepted with it; the "
        "old key then gets 401 (default: 0, never)",
    )
    behave.add_argument("--cookie-ttl", type=float, help="seconds a bot-check cookie stays valid")
    behave.add_argument(
        "--api-key",
        default=DEFAULT_API_KEY,
        help="subscription key to require (32 lowercase hex; rotates with --rotate-key-after)",
    )
    behave.add_argument("--build-id", default=DEFAULT_BUILD_ID, help="Next.js buildId")
    behave.add_argument(
        "--rate-limit-every", type=int, default=0, metavar="N", help="every Nth → 429"
    )
    behave.add_argument(
        "--unavailable-every", type=int, default=0, metavar="N", help="every Nth → 503"
    )
    behave.add_argument(
        "--error-share", type=float, default=0.0, metavar="F", help="share of random 429/503"
    )
    behave.add_argument("--retry-after", type=int, default=1, metavar="S", help="Retry-After value")
    behave.add_argument("--delay-ms", type=float, default=0.0, help="delay every content answer")
    behave.add_argument(
        "--fail-sku", type=int, action="append", default=[], metavar="SKU", help="always 503"
    )
    behave.add_argument(
        "--not-found-sku", type=int, action="append", default=[], metavar="SKU", help="as unknown"
    )
    behave.add_argument(
        "--page-gtin", action="store_true", help="product pages carry the GTIN (fallback source)"
    )
    behave.add_argument(
        "--disallow",
        action="append",
        metavar="PATH",
        help="robots.txt Disallow (repeatable; default: /checkout and /account)",
    )
    behave.add_argument(
        "--break",
        dest="breaks",
        action="append",
        default=[],
        metavar="MODE",
        help="break one point of the site contract on purpose (repeatable, or a comma list; "
        'POST /__replica__/config {"breaks": []} restores the site):\n'
        + "\n".join(f"{mode}: {what}" for mode, what in BREAKS.items()),
    )
    behave.add_argument(
        "--config", metavar="JSON", help="any ReplicaConfig fields as a JSON object (applied last)"
    )
    wool = parser.add_argument_group(
        f"Woolworths (under {WOOLWORTHS_PREFIX}/; changeable via "
        f"{WOOLWORTHS_PREFIX}/__replica__/config)"
    )
    wool.add_argument(
        "--woolworths-block",
        action="store_true",
        help="answer every Woolworths request with Akamai's 403 'Access Denied' page",
    )
    wool.add_argument(
        "--woolworths-block-clients",
        action="append",
        default=[],
        metavar="ADDR[,ADDR...]",
        help="client addresses answered with Akamai's 403 (repeatable)",
    )
    wool.add_argument(
        "--woolworths-fail-department",
        action="append",
        default=None,
        metavar="NODE_ID",
        help="a department whose listing always answers 500 (repeatable; default: Front of "
        "Store, as on the real site)",
    )
    return parser


def woolworths_config_from_args(args: argparse.Namespace) -> WoolworthsConfig:
    """The :class:`WoolworthsConfig` the parsed options ask for (latency: ``--delay-ms``)."""
    config = WoolworthsConfig(blocked=args.woolworths_block, delay_ms=args.delay_ms)
    config.update({"block_clients": list(args.woolworths_block_clients)})
    if args.woolworths_fail_department is not None:
        config.update({"fail_departments": list(args.woolworths_fail_department)})
    return config


def config_from_args(args: argparse.Namespace) -> ReplicaConfig:
    """The :class:`ReplicaConfig` the parsed options ask for."""
    config = ReplicaConfig(
        layout=args.layout,
        block_clients=list(args.block_clients),
        block_status=args.block_status,
        max_aliases=args.max_aliases,
        rotate_key_after=args.rotate_key_after,
        api_key=args.api_key,
        build_id=args.build_id,
        challenge=args.challenge,
        cookie_ttl_s=args.cookie_ttl,
        rate_limit_every=args.rate_limit_every,
        unavailable_every=args.unavailable_every,
        error_share=args.error_share,
        seed=args.seed,
        retry_after_s=args.retry_after,
        delay_ms=args.delay_ms,
        fail_skus=set(args.fail_sku),
        not_found_skus=set(args.not_found_sku),
        page_gtin=args.page_gtin,
        breaks=list(args.breaks),
    )
    if args.disallow is not None:
        config.robots_disallow = list(args.disallow)
    if args.config:
        config.update(json.loads(args.config))
    return config


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Parse ``argv`` and serve until interrupted; returns the exit status."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        woolworths = woolworths_config_from_args(args)
        if args.catalogue:
            catalogue = Catalogue.from_jsonl(args.catalogue)
        else:
            catalogue = Catalogue.generate(args.products, seed=args.seed, start_sku=args.start_sku)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    if args.export:
        try:
            catalogue.to_jsonl(args.export)
        except OSError as exc:
            print(f"replica: cannot write {args.export}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"wrote {len(catalogue)} products to {args.export}", file=sys.stderr)
        return 0
    try:
        run(args.host, args.port, catalogue, config, woolworths)
    except OSError as exc:
        print(f"replica: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
