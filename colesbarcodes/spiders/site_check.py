"""The site check: a handful of polite requests that probe each point of the site contract.

Run by ``scrapy site-check`` (which prints the rows), or as ``scrapy crawl site_check`` (for
scrapyd: the rows are in the stats, ``site_check/results``). The requests go through the same
settings and downloader middlewares as the crawls (exits, the bot-check browser, retries),
one after the other. The verdicts are :mod:`colesbarcodes.site.checks`'s; this spider only
asks and, with ``-a save=DIR``, keeps every answer (key and proxy credentials masked) for a
bug report.

Arguments: ``skus`` (two or more SKUs, comma-separated; the first is looked up alone, the
first two together), ``store`` (COLES_STORE_ID), ``base_url`` (COLES_BASE_URL), ``save``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import scrapy
from scrapy.exceptions import CloseSpider

from colesbarcodes.config import ConfigurationError
from colesbarcodes.crawl.arguments import (
    argument_or_setting,
    folder_value,
    http_url,
    refuse_unknown_arguments,
)
from colesbarcodes.crawl.browser import BrowserUnavailable
from colesbarcodes.crawl.components import disable_components
from colesbarcodes.crawl.exits import BlockedByProtection, Exit, exits_from_setting
from colesbarcodes.feeds.store_walk import store_id
from colesbarcodes.gtin import shown
from colesbarcodes.middlewares.lookup_batch import LookupBatchMiddleware
from colesbarcodes.middlewares.prefill import PrefillMiddleware
from colesbarcodes.site.checks import (
    BATCH,
    BUILD_ID,
    CATEGORIES,
    DEFAULT_SKUS,
    KEY,
    LISTING,
    PRODUCT,
    PRODUCT_PAGE,
    Answer,
    CheckResult,
    Status,
    check_batch,
    check_build_id,
    check_categories,
    check_home,
    check_key,
    check_listing,
    check_product,
    check_product_page,
    failed,
    mask,
    site_unusable,
    skipped,
)
from colesbarcodes.site.coles import (
    categories_graphql_body,
    categories_path,
    graphql_body,
    graphql_headers,
    listing_path,
    listing_plan,
    product_page_path,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from pathlib import Path
    from typing import Self

    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

__all__ = ["RESULTS_STAT", "SiteCheckSpider"]

logger = logging.getLogger(__name__)

RESULTS_STAT = "site_check/results"
ARGUMENTS = ("base_url", "save", "skus", "store")


@dataclass(frozen=True)
class SiteCheckArguments:
    """What the site check is asked to do: ``skus`` (the SKUs given, then the default ones),
    ``store`` (COLES_STORE_ID), ``base_url`` (COLES_BASE_URL), ``save`` (a directory for
    the answers, or None), and from the settings only: ``exits`` (COLES_PROXIES) and
    ``skip`` (the listing paths of COLES_LISTING_SKIP_GROUPS)."""

    base_url: str
    store: str
    skus: tuple[str, ...] = DEFAULT_SKUS
    save: Path | None = None
    exits: tuple[Exit, ...] = (Exit(0),)
    skip: frozenset[str] = frozenset({"down-down", "bonus-prize-entries"})

    @classmethod
    def from_settings(
        cls, settings: BaseSettings, given: Mapping[str, object] | None = None
    ) -> Self:
        """From ``settings``, each overridden by its argument in ``given`` (the command's
        options); a value the check cannot use raises ConfigurationError. The folder for
        ``save`` is created here."""
        given = given or {}
        skus = [s.strip() for s in str(given.get("skus") or "").split(",") if s.strip()]
        for sku in skus:
            if not sku.isdigit():
                raise ConfigurationError(
                    f"--sku/-a skus: {shown(sku)} is not a SKU: a Coles SKU is a number, "
                    "e.g. 1018067"
                )
        save = None
        if given.get("save") is not None:
            save = folder_value("--save/-a save", str(given["save"]), must_exist=False)
            try:
                save.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigurationError(
                    f"--save/-a save {save}: cannot create it ({exc.strerror}): give a folder "
                    "that can be written"
                ) from None
        return cls(
            base_url=http_url(
                "--base-url/-a base_url" if given.get("base_url") else "COLES_BASE_URL",
                argument_or_setting(given, "base_url", settings, "COLES_BASE_URL"),
            ),
            store=store_id(
                argument_or_setting(given, "store", settings, "COLES_STORE_ID"),
                "--store/-a store" if given.get("store") else "COLES_STORE_ID",
            ),
            skus=(*skus, *(s for s in DEFAULT_SKUS if s not in skus)),
            save=save,
            exits=tuple(exits_from_setting(settings.get("COLES_PROXIES"))),
            skip=frozenset(
                str(g).strip("/") for g in settings.getlist("COLES_LISTING_SKIP_GROUPS")
            ),
        )


class SiteCheckSpider(scrapy.Spider):
    """Probes the site contract once; see the module docstring."""

    name = "site_check"
    # Nothing is stored, nothing judged: no database is needed. A block page is reported at
    # once rather than waited out (COLES_BLOCK_MAX_RETRIES=0); retries stay few.
    custom_settings = {
        "ITEM_PIPELINES": {},
        "COLES_RUN_LEDGER_ENABLED": False,
        "COLES_MONITOR_ENABLED": False,
        "COLES_BLOCK_MAX_RETRIES": 0,
        "RETRY_TIMES": 1,
        "CONCURRENT_REQUESTS": 1,
    }

    arguments: SiteCheckArguments
    base_url: str
    store: str
    skus: list[str]
    save: Path | None

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        super().update_settings(settings)
        # No SKUs to prefill or to batch: the probes are single requests.
        disable_components(settings, "SPIDER_MIDDLEWARES", PrefillMiddleware, LookupBatchMiddleware)

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> SiteCheckSpider:
        refuse_unknown_arguments(cls.name, kwargs, ARGUMENTS)
        spider: SiteCheckSpider = super().from_crawler(crawler, *args, **kwargs)
        arguments = SiteCheckArguments.from_settings(crawler.settings, kwargs)
        spider.arguments = arguments
        spider.base_url = arguments.base_url
        spider.store = arguments.store
        spider.skus = list(arguments.skus)
        spider.save = arguments.save
        exits = arguments.exits
        spider._exit_labels = {e.index: e.label for e in exits}
        spider._secrets = [secret for e in exits for secret in e.secrets]
        spider._saved = []
        return spider

    _exit_labels: dict[int, str]
    _secrets: list[str]
    _saved: list[dict[str, Any]]

    # -- asking ---------------------------------------------------------------------------

    async def _ask(self, check: str, url: str, **kwargs: Any) -> Answer:
        """One request awaited here, through the downloader middlewares."""
        engine = self.crawler.engine
        if engine is None:
            raise RuntimeError("the crawler is not running")
        source = "home" if check == "home" else "listing_setup"  # the exit pool's start-up
        meta = {"coles_source": source, "handle_httpstatus_all": True, **kwargs.pop("meta", {})}
        request = scrapy.Request(url, dont_filter=True, meta=meta, **kwargs)
        try:
            response = await engine.download_async(request)
        except BlockedByProtection as exc:
            answer = Answer(error=str(exc), blocked=True)
            self._keep(check, url, answer, None)
            return answer
        except BrowserUnavailable as exc:  # this machine's browser: no verdict on the site
            raise CloseSpider(str(exc.unusable())) from None
        except Exception as exc:  # any download failure: the site did not answer
            answer = Answer(error=f"{type(exc).__name__}: {exc}"[:300])
            self._keep(check, url, answer, None)
            return answer
        content_type = (response.headers.get(b"Content-Type") or b"").decode("latin-1")
        answer = Answer(status=response.status, body=response.body, content_type=content_type)
        self._keep(check, url, answer, response)
        if check == "home":
            self._exit_used = int(response.meta.get("coles_exit", 0))
        return answer

    _exit_used = 0

    def _keep(self, check: str, url: str, answer: Answer, response: Any) -> None:
        if self.save is None:
            return
        self.save.mkdir(parents=True, exist_ok=True)
        number = len(self._saved) + 1
        kind = "json" if answer.body[:1] in (b"{", b"[") else "html"
        name = f"{number:02d}-{check}.{kind}" if answer.body else None
        if name is not None:
            (self.save / name).write_bytes(mask(answer.body, self._secrets))
        headers = {}
        if response is not None:
            headers = {
                k.decode("latin-1"): b", ".join(v).decode("latin-1")
                for k, v in response.headers.items()
            }
        self._saved.append(
            {
                "check": check,
                "url": url,
                "status": answer.status,
                "error": answer.error,
                "headers": headers,
                "file": name,
            }
        )

    def _write_index(self) -> None:
        if self.save is None:
            return
        self.save.mkdir(parents=True, exist_ok=True)
        index = json.dumps(self._saved, indent=2).encode()
        (self.save / "responses.json").write_bytes(mask(index, self._secrets))

    # -- the checks, in order -------------------------------------------------------------

    async def start(self) -> AsyncIterator[Any]:
        try:
            results = await self._run_checks()
        finally:
            self._write_index()  # what came is kept, whatever the checks made of it
        stats = self.crawler.stats
        stats.set_value(RESULTS_STAT, [{**r.as_json(), "required": r.required} for r in results])
        failing = failed(results)
        stats.set_value("site_check/failed", len(failing))
        for result in results:
            quiet = result.status in (Status.OK, Status.SKIPPED)
            log = logger.info if quiet else logger.warning
            log("site-check %s: %s: %s", result.check, result.status, result.seen)
        unusable = site_unusable(results)
        if unusable is not None:  # `scrapy crawl site_check` exits as the crawls would
            raise CloseSpider(str(unusable))
        return
        yield  # an async generator that yields nothing: every request is awaited above

    async def _run_checks(self) -> list[CheckResult]:
        base, sku, pair = self.base_url, self.skus[0], self.skus[:2]
        solved_before = self._solved()
        home = await self._ask("home", f"{base}/")
        label = self._exit_labels.get(self._exit_used, "direct")
        results = [check_home(home, self._solved() > solved_before, label)]
        if results[0].status is not Status.OK:
            later = (BUILD_ID, KEY, PRODUCT, BATCH, CATEGORIES, LISTING, PRODUCT_PAGE)
            return results + [skipped(check, "home page") for check in later]

        build_result, build_id = check_build_id(home.body)
        key_result, config = check_key(home.body, f"{base}/")
        if config is not None:
            self._secrets.append(config.api_key)
            self._rewrite_saved()
        results += [build_result, key_result]

        name: str | None = None
        if config is None:
            results += [skipped(PRODUCT, "key"), skipped(BATCH, "key")]
        else:
            headers = graphql_headers(base, config.api_key)
            answer = await self._ask(
                "product",
                config.graphql_url,
                method="POST",
                body=graphql_body([sku], self.store),
                headers=headers,
            )
            product, name = check_product(answer, sku)
            results.append(product)
            if product.status is Status.OK or name is not None:  # the operation answers
                answer = await self._ask(
                    "batch",
                    config.graphql_url,
                    method="POST",
                    body=graphql_body(pair, self.store),
                    headers=headers,
                )
                results.append(check_batch(answer, pair))
            else:
                results.append(skipped(BATCH, "product lookup"))

        tree_graphql = tree_route = None
        if config is not None:
            tree_graphql = await self._ask(
                "categories_graphql",
                config.graphql_url,
                method="POST",
                body=categories_graphql_body(self.store),
                headers=graphql_headers(base, config.api_key),
            )
        if build_id:
            tree_route = await self._ask("categories_route", base + categories_path(build_id))
        categories, tree = check_categories(tree_graphql, tree_route)
        results.append(categories)

        if not build_id:
            results.append(skipped(LISTING, "build id"))
        elif not tree:
            results.append(skipped(LISTING, "category tree"))
        else:
            listed, _ = listing_plan(tree, self.arguments.skip, 48 * 104)
            path = (listed or list(tree))[0].path
            answer = await self._ask("listing", base + listing_path(build_id, path, 1, self.store))
            results.append(check_listing(answer, path))

        answer = await self._ask("product_page", base + product_page_path(sku, name))
        results.append(check_product_page(answer, sku))
        return results

    def _rewrite_saved(self) -> None:
        """Mask the key in the answers saved before it was known (the home page)."""
        if self.save is None:
            return
        for entry in self._saved:
            if entry["file"]:
                path = self.save / entry["file"]
                path.write_bytes(mask(path.read_bytes(), self._secrets))

    def _solved(self) -> int:
        value = self.crawler.stats.get_value("botcheck/solved", 0)
        return int(value) if isinstance(value, int) else 0
