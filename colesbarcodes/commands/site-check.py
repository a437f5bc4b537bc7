"""``scrapy site-check``: which point of the site contract holds, and which one changed.

A handful of polite requests, one after the other, through the same settings, exits
(``COLES_PROXIES``), bot-check browser and retries as the crawls (the ``site_check``
spider). One row per check:

  home          the home page answers with content (or: which protection answered)
  build_id      ``buildId`` in ``__NEXT_DATA__`` (listing URLs need it)
  key           the subscription key, and where: ``window.__RUNTIME_CONFIG__`` or
                ``__NEXT_DATA__.runtimeConfig``
  product       ``GetProductDetails`` for the first ``--sku`` answers a valid GTIN
  batch         one document asking for the first two SKUs answers both
  categories    the category tree (GraphQL ``GetShopProductsMenu``, or the older
                ``browse.json`` route) with a plausible number of departments
  listing       page 1 of one category has product rows
  product_page  the SKU's product page: JSON-LD and GTIN present or not (information)

Each row says ``ok``, ``changed``, ``blocked``, ``unreachable`` or ``skipped`` (not run
because a check it needs failed: read that one), what was seen, and the remedy: the
section of docs/site.md that names the one place to change.

Exit status: 0 when every required check is ok; else as ``scrapy crawl``: 4 when the site
changed or is unreachable, 5 when its protection blocks the exit (set ``COLES_PROXIES``);
1 when the check could not start, 2 for bad usage or a value it cannot use (one ERROR
line says which).

Examples:
  scrapy site-check
  scrapy site-check --sku 1018067 --sku 8060378 --save var/site-check
  scrapy site-check --json -s COLES_BASE_URL=http://127.0.0.1:8000
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError
from scrapy.settings import SETTINGS_PRIORITIES

from colesbarcodes.commands.crawl import BAD_CONFIGURATION_EXIT, exit_status, run_crawler
from colesbarcodes.site.checks import DEFAULT_SKUS, CheckResult, render_table
from colesbarcodes.spiders.site_check import RESULTS_STAT

if TYPE_CHECKING:
    import argparse

__all__ = ["Command"]


class Command(ScrapyCommand):
    requires_project = True

    def syntax(self) -> str:
        return "[options]"

    def short_desc(self) -> str:
        return "Probe each point of the site contract and say which one changed"

    def long_desc(self) -> str:
        return __doc__ or self.short_desc()

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument(
            "--sku",
            action="append",
            default=[],
            metavar="SKU",
            help="a product to look up (repeat for the batch check; default: "
            f"{', '.join(DEFAULT_SKUS)}, seen on the site in 2025-2026)",
        )
        parser.add_argument("--store", metavar="ID", help="store id (default: COLES_STORE_ID)")
        parser.add_argument(
            "--base-url", metavar="URL", help="the site to check (default: COLES_BASE_URL)"
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help='print a JSON list of {"check", "status", "seen", "remedy"} instead of a table',
        )
        parser.add_argument(
            "--save",
            metavar="DIR",
            help="write every raw answer to DIR (key and proxy credentials masked), "
            "with an index responses.json, for a bug report",
        )

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        # The rows are the output: the crawl's log only from warnings up, unless asked.
        settings = self.settings
        if settings is None:
            raise RuntimeError("scrapy set no settings for this command")
        if (settings.getpriority("LOG_LEVEL") or 0) < SETTINGS_PRIORITIES["cmdline"]:
            settings.set("LOG_LEVEL", "WARNING", priority="cmdline")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if args:
            raise UsageError(f"site-check takes no arguments (got {' '.join(args)}); see --help")
        if self.crawler_process is None:
            raise RuntimeError("scrapy set no crawler process for this command")
        # The options' values are checked where `scrapy crawl site_check` checks them
        # (SiteCheckArguments): a wrong one is one ERROR line and status 2.
        crawler = self.crawler_process.create_crawler("site_check")
        spider_args = {"skus": ",".join(s.strip() for s in opts.sku)}
        for name in ("store", "base_url", "save"):
            if getattr(opts, name) is not None:
                spider_args[name] = getattr(opts, name)
        status = run_crawler(self.crawler_process, crawler, spider_args)
        if status in (1, BAD_CONFIGURATION_EXIT) or crawler.stats is None:
            self.exitcode = status or 1
            return
        stats = crawler.stats.get_stats()
        rows = stats.get(RESULTS_STAT)
        if not isinstance(rows, list):
            reason = stats.get("finish_reason") or "unknown"
            print(f"site-check could not run its checks (finish reason: {reason})", file=sys.stderr)
            self.exitcode = exit_status(stats) or 1
            return
        if opts.json:
            print(json.dumps([CheckResult.from_json(r).as_json() for r in rows], indent=2))
        else:
            print(render_table([CheckResult.from_json(r) for r in rows]))
            if opts.save:
                print(f"\nanswers saved in {opts.save} (index: responses.json)")
        self.exitcode = exit_status(stats)
