"""Scrapy settings of the colesbarcodes crawls: every knob in one place.

Project settings are named ``COLES_*`` (plus ``DATABASE_URL``, ``PREFILL_ENABLED`` and
the ``RETRY_*`` additions). Override them with ``-s NAME=VALUE``, in scrapyd, or, for
the ones read from the environment below, with environment variables.
"""

from __future__ import annotations

import os
import shutil

from colesbarcodes.crawl.browser import SYSTEM_CHROMIUMS
from colesbarcodes.db.engine import database_url

# Scrapy's cookie handling asks tldextract for the public suffix list, which it would
# download on first use (logging tracebacks where there is no internet) before falling
# back to its bundled copy: use the bundled copy from the start. Set the variable to a
# URL to fetch a fresh list instead.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

BOT_NAME = "colesbarcodes"
SPIDER_MODULES = ["colesbarcodes.spiders"]
NEWSPIDER_MODULE = "colesbarcodes.spiders"

# --- The site and the inbox -----------------------------------------------------------
COLES_BASE_URL = os.environ.get("COLES_BASE_URL", "https://www.coles.com.au")
COLES_STORE_ID = os.environ.get("COLES_STORE_ID", "0584")  # for lines without a store
COLES_ENRICHMENT_INBOX = os.environ.get(
    "COLES_ENRICHMENT_INBOX", "inboxes/barcode_enrichment_inbox"
)
COLES_ARCHIVE_FINISHED_FILES = False  # finished files are deleted; True moves them to archive/
# The inbox files' life (claim, accounting, finishing, retry and spill files): the
# EnrichmentFiles extension, turned on by the barcode spider's custom_settings.
COLES_ENRICHMENT_FILES = False
# scrapyd's job id (its `_job` argument), recorded with lookups and in the run ledger.
COLES_JOB = ""
COLES_MAX_SKUS = 0  # stop taking SKUs after this many (0: no limit); -a limit=N
COLES_PRODUCT_PAGE_FALLBACK = False  # also try the product page when the API has no GTIN
# SKUs of one store asked for in one GraphQL document (aliases); 1 turns batching off. A
# public scraper (2026) reports 48 per request working with a sparse selection; when the
# site refuses a document as too complex, the crawl halves it and keeps the size that worked.
COLES_GRAPHQL_BATCH = 24
COLES_GRAPHQL_BATCH_WAIT = 0.25  # seconds a partial batch waits for more SKUs

# --- Exits: where the crawl's requests leave from ----------------------------------------
# Forward proxies, http://[user:password@]host:port, separated by commas or new lines, or
# @FILE with one per line. Every request, the browser's included, leaves through the current
# one; a block page moves the crawl to the next. Unset: requests leave directly.
COLES_PROXIES = os.environ.get("COLES_PROXIES", "")
COLES_BLOCK_MAX_RETRIES = 3  # waits on a block page once every exit is blocked, then close
COLES_BLOCK_BACKOFF = 30.0  # seconds before the first such retry; doubles each time
COLES_EXIT_MAX_FAILURES = 5  # connection failures in a row on an exit before moving on

# --- The shared frontier: several crawl processes, one Redis stream of SKUs -------------
# Set a Redis URL (redis://[:password@]host:6379/0, or -a frontier=URL) to take SKUs from
# the frontier that `coles-loader frontier feed` fills, instead of from the inbox. Unset:
# the crawl works from the inbox alone, on one machine (the default).
COLES_FRONTIER_URL = os.environ.get("COLES_FRONTIER_URL", "")
COLES_FRONTIER_KEY = os.environ.get("COLES_FRONTIER_KEY", "colesbarcodes:frontier:coles")
# A SKU a worker took and has not acknowledged (outcome committed) for this long goes to
# another worker: the worker is taken for dead (live workers keep theirs fresh).
COLES_FRONTIER_CLAIM_TIMEOUT = 300.0
COLES_FRONTIER_BATCH = 50  # entries read at a time
# SKUs a worker holds unanswered at most (0: 2 x CONCURRENT_REQUESTS x COLES_GRAPHQL_BATCH)
COLES_FRONTIER_PREFETCH = 0
COLES_FRONTIER_POLL = 1.0  # seconds between looks when the stream has nothing for this worker
COLES_FRONTIER_MAX_DELIVERIES = 5  # a SKU handed out this often without an outcome: "failed"
# The frontier's worker (the FrontierWorker extension), turned on by the barcode spider's
# custom_settings; it runs only when COLES_FRONTIER_URL is set.
COLES_FRONTIER_WORKER = False

# --- The database ---------------------------------------------------------------------
DATABASE_URL = database_url()  # DATABASE_URL from the environment, else SQLite under var/
PREFILL_ENABLED = True  # skip SKUs whose barcode the database already has
COLES_RECHECK_DAYS = 7.0  # SKUs without a barcode are asked for again after this long
COLES_UPSERT_BATCH_SIZE = 500  # outcomes per transaction
COLES_UPSERT_MAX_DELAY = 5.0  # seconds an outcome may wait for its batch
COLES_DB_RETRIES = 5  # attempts to store a batch before the spider closes
# Write outcome batches in a worker thread instead of the reactor's. Off by default: the
# driver releases the interpreter lock on every wait, and each time its thread has to wait
# for the crawl to hand it back (a fast crawl ran 20-30 % slower). Turn it on for a
# database far away on the network, where a batch's round trips would stall the crawl.
COLES_DB_WRITE_THREAD = False

# --- Politeness -----------------------------------------------------------------------
ROBOTSTXT_OBEY = True
USER_AGENT = "colesbarcodes (+https://github.com/colesbarcodes/colesbarcodes)"
CONCURRENT_REQUESTS = 8
CONCURRENT_REQUESTS_PER_DOMAIN = 4
DOWNLOAD_DELAY = 0.5
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
DOWNLOAD_TIMEOUT = 30
RETRY_ENABLED = True
RETRY_TIMES = 4
RETRY_HTTP_CODES = [429, 500, 502, 503, 504, 522, 524, 408]
RETRY_BACKOFF_BASE = 1.0  # seconds before the first retry; doubles each time
RETRY_BACKOFF_MAX = 60.0
RETRY_AFTER_MAX = 300.0  # longest Retry-After honoured
COOKIES_ENABLED = True
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False  # no control port on unattended crawls

# --- The bot check: a real browser, only for the challenge ----------------------------
# Whose protection pages the exits and the bot check read (each spider sets its retailer:
# "coles", Imperva; "woolworths", Akamai).
CRAWL_RETAILER = "coles"
COLES_BOTCHECK_ENABLED = True
COLES_BOTCHECK_MAX_BROWSER_PAGES = 3
COLES_BOTCHECK_TIMEOUT = 30.0


def _chromium() -> str | None:
    """A system Chromium (``COLES_CHROMIUM_PATH``, else Debian's), or None for
    Playwright's own browser."""
    configured = os.environ.get("COLES_CHROMIUM_PATH")
    if configured:
        return configured
    for candidate in SYSTEM_CHROMIUMS:
        if shutil.which(candidate):
            return candidate
    return None


DOWNLOAD_HANDLERS = {
    "http": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
    "https": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
}
PLAYWRIGHT_BROWSER_TYPE = "chromium"
PLAYWRIGHT_LAUNCH_OPTIONS: dict[str, object] = {
    "headless": True,
    # --no-sandbox: Chromium refuses to start as root without it (containers, CI).
    "args": [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ],
}
if _chromium():
    PLAYWRIGHT_LAUNCH_OPTIONS["executable_path"] = _chromium()
PLAYWRIGHT_MAX_CONTEXTS = 1
PLAYWRIGHT_MAX_PAGES_PER_CONTEXT = 1
PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT = 30_000

# --- Components -----------------------------------------------------------------------
SPIDER_MIDDLEWARES = {
    "colesbarcodes.middlewares.prefill.PrefillMiddleware": 50,
    # after the prefill (lower = nearer the engine): only SKUs that need the site are batched
    "colesbarcodes.middlewares.lookup_batch.LookupBatchMiddleware": 40,
}
# process_request runs in ascending order, process_response in descending: the exit is
# chosen before the cookie jar (700) and the proxy (750) are applied; a block page is seen
# before the challenge solver, and a 401 before the retries.
DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "colesbarcodes.middlewares.retry_after.RetryAfterMiddleware": 550,
    "colesbarcodes.middlewares.api_key.ApiKeyMiddleware": 600,
    "colesbarcodes.middlewares.bot_check.BotCheckMiddleware": 650,
    "colesbarcodes.middlewares.exit_pool.ExitPoolMiddleware": 680,
}
ITEM_PIPELINES = {
    "colesbarcodes.pipelines.barcode_upsert.BarcodeUpsertPipeline": 300,
}
EXTENSIONS = {
    # first of all: a wrong setting stops the crawl before anything is built
    "colesbarcodes.extensions.settings_check.SettingsCheck": -1000,
    "colesbarcodes.extensions.site_session.SiteSession": 0,  # the home page's key and build id, batch size
    # the barcode crawl's SKU sources (the spider's custom_settings turn them on)
    "colesbarcodes.frontier.worker.FrontierWorker": 40,
    "colesbarcodes.extensions.enrichment_files.EnrichmentFiles": 50,
    # spider_closed handlers run in this order, after Scrapy's CoreStats (0): the monitors
    # judge the run first, then the stats file and the run ledger record their verdict.
    "colesbarcodes.extensions.crawl_monitor.CrawlMonitor": 100,
    "colesbarcodes.extensions.stats_file.StatsFile": 500,
    "colesbarcodes.extensions.run_ledger.CrawlRunLedger": 510,
}
COLES_STATS_FILE = os.environ.get("COLES_STATS_FILE", "")  # write the final stats as JSON

TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
FEED_EXPORT_ENCODING = "utf-8"
LOG_LEVEL = os.environ.get("COLES_LOG_LEVEL", "INFO")

# --- Monitors and the run ledger ------------------------------------------------------
# At the end of every crawl the monitors (colesbarcodes/extensions/crawl_monitor.py) judge it from its
# stats. A failed verdict: stat monitor/result = "failed", the finish reason "finished"
# becomes "monitor_failed: <the failed checks>", and `scrapy crawl` exits with status 3.
COLES_MONITOR_ENABLED = True
COLES_MONITOR_MAX_FAILED_SHARE = 0.25  # of the SKUs asked of the site, the share that failed
COLES_MONITOR_MAX_CHALLENGE_SHARE = 0.3  # of all responses, the share that were the bot check
COLES_MONITOR_MAX_ITEMS_DROPPED = 0  # items dropped by a pipeline (item_dropped_count)
COLES_MONITOR_MAX_ERRORS = 0  # ERROR log lines (log_count/ERROR)
# The drift monitor: a site that changed under a crawl that still runs. Its failure ends
# with "the site may have changed, run scrapy site-check".
# GTIN share (barcode crawls only): of the product records the site answered (found,
# no_barcode, invalid_barcode), the share with a GTIN (found, invalid_barcode). It fails
# below COLES_MONITOR_GTIN_DROP x the median share of the latest COLES_MONITOR_GTIN_HISTORY
# runs of the spider in the run ledger with at least COLES_MONITOR_GTIN_MIN_RECORDS records
# (read when the spider opens), and never passes below COLES_MONITOR_MIN_GTIN_SHARE.
COLES_MONITOR_GTIN_SHARE = False  # judge the GTIN share (the barcode spider turns it on)
COLES_MONITOR_GTIN_DROP = 0.5  # half the recent runs' median
COLES_MONITOR_GTIN_HISTORY = 5  # recent runs the median is taken over
COLES_MONITOR_GTIN_MIN_RECORDS = 20  # fewer records: the run is not judged, nor counted
# The floor, alone while no run is recorded: most Coles products carry a GTIN (in-store
# codes included), so a run where fewer than 1 record in 20 does means the GTIN is no longer
# where the crawl reads it; an inbox of odd products stays well above it.
COLES_MONITOR_MIN_GTIN_SHARE = 0.05
# Of the SKU answers read (coles/answers_read), the share whose format could not be read
# (coles/site_format_errors: unreadable answers, documents GraphQL refused, records of the
# wrong shape; the server's own errors on a field are failures, not format errors).
COLES_MONITOR_MAX_FORMAT_ERROR_SHARE = 0.05
# A SKU still failing after its retries is an outcome ("failed", retry file), judged by the
# failed share above: Scrapy's "Gave up retrying" line is a warning, not an error.
RETRY_GIVE_UP_LOG_LEVEL = "WARNING"
COMMANDS_MODULE = "colesbarcodes.commands"  # `scrapy crawl` that exits 3 on a failed monitor
COLES_RUN_LEDGER_ENABLED = True  # one crawl_runs row per crawl (coles-loader runs, report)
COLES_LEDGER_CONNECT_TIMEOUT = 10.0  # seconds; an unreachable database never fails the crawl

# --- The product-listing crawl: scrapy crawl coles_products -a stores=0584,0601 ---------
# One file per store and run, coles_store-<store>_<time>.jsonl, lands in this inbox when
# its store's walk is complete (written as .jsonl.part until then).
COLES_PRODUCT_INBOX = os.environ.get("COLES_PRODUCT_INBOX", "inboxes/product_inbox")
# Promotional groupings that only repeat products listed elsewhere (listing paths).
COLES_LISTING_SKIP_GROUPS = ["down-down", "bonus-prize-entries"]
COLES_LISTING_PAGE_SIZE = 48  # rows a listing page holds, when the page does not say
# The site shows no listing page past this one: bigger categories are walked through
# their sub-categories.
COLES_LISTING_MAX_PAGES = 104
# A store's file is published only if at most this many listing pages were lost (failed
# after retries, or beyond the page cap of a category without sub-categories).
COLES_LISTING_MAX_FAILED_PAGES = 0
# Also queue the listed SKUs without a known barcode (DATABASE_URL) in COLES_ENRICHMENT_INBOX.
COLES_LISTING_QUEUE_MISSING_BARCODES = False

# --- The Woolworths listing crawl: scrapy crawl woolworths_products ---------------------
# One file per run, woolworths_store-online_<time>.jsonl (online prices: an anonymous
# session's prices are not per store), in COLES_PRODUCT_INBOX when its walk is complete.
WOOLWORTHS_BASE_URL = os.environ.get("WOOLWORTHS_BASE_URL", "https://www.woolworths.com.au")
# Departments left out, by NodeId or slug (Everyday Market, 1_A363395, always is): Home &
# Lifestyle and Electronics (each over 100,000 products, not groceries), and Front of Store,
# whose listing errors on the real site.
WOOLWORTHS_SKIP_DEPARTMENTS = ["1_DEA3ED5", "1_B863F57", "front-of-store"]
# The file is published only if at most this many listing pages were lost (a department
# the site refuses loses its pages).
WOOLWORTHS_MAX_FAILED_PAGES = 0
# atomicfile:///path: a feed written as <path>.part and renamed once its spider says it is
# complete (colesbarcodes.feeds.storage.AtomicFileFeedStorage).
FEED_STORAGES = {"atomicfile": "colesbarcodes.feeds.storage.AtomicFileFeedStorage"}
# coles_jsonl: JSON lines written with orjson (colesbarcodes.feeds.exporter.ListingLinesExporter).
FEED_EXPORTERS = {"coles_jsonl": "colesbarcodes.feeds.exporter.ListingLinesExporter"}
