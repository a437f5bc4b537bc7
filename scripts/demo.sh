#!/usr/bin/env bash
# The main job on the embedded default: SQLite under var/, the bundled sample inbox and
# the bundled replica of the retailer's site (bot check on, solved in Chromium).
#   0. crawl the listings of stores 0584 and 0601 from the replica site into the inbox, and
#      Woolworths' listings (online prices, barcodes included) from the replica's Woolworths;
#   1. import the product files of the inbox (the listing crawl's and the samples), post-process;
#   2. queue the SKUs still without a barcode for the barcode crawl;
#   3. crawl their barcodes from the replica site;
#   4. print the data-quality summary;
#   5. write the HTML report (var/report.html);
#   6. compare both retailers: the products with a global GTIN that both sell.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"
export DATABASE_URL="${DATABASE_URL:-sqlite:///var/colesbarcodes.sqlite3}"

mkdir -p inboxes/product_inbox inboxes/barcode_enrichment_inbox var
# Drop the bundled sample files into the inbox (importing them again changes nothing).
cp examples/product_inbox/*.jsonl inboxes/product_inbox/

url_file=$(mktemp)
"$BIN/coles-loader" replica --catalogue examples/replica_catalogue.jsonl --challenge >"$url_file" 2>var/replica.log &
replica_pid=$!
trap 'kill $replica_pid 2>/dev/null || true; rm -f "$url_file"' EXIT
for _ in $(seq 100); do
    [ -s "$url_file" ] && break
    sleep 0.1
done
site=$(head -n 1 "$url_file")
echo "replica site at $site (log: var/replica.log)"

echo
echo "== 0. Crawling the listings of stores 0584 and 0601 into inboxes/product_inbox"
"$BIN/scrapy" crawl coles_products -a stores=0584,0601 -s COLES_BASE_URL="$site" -s LOG_LEVEL=INFO \
    -s DOWNLOAD_DELAY=0 -s AUTOTHROTTLE_ENABLED=False -s COLES_STATS_FILE=var/last_listing_stats.json \
    2>&1 | grep -E "\[colesbarcodes.(spiders|crawl.listing)|Spider closed|ERROR" || true
echo
echo "== 0. Crawling Woolworths' listings (online prices) into inboxes/product_inbox"
"$BIN/scrapy" crawl woolworths_products -s WOOLWORTHS_BASE_URL="$site/woolworths" -s LOG_LEVEL=INFO \
    -s DOWNLOAD_DELAY=0 -s AUTOTHROTTLE_ENABLED=False -s COLES_STATS_FILE=var/last_woolworths_stats.json \
    2>&1 | grep -E "\[colesbarcodes.(spiders|crawl.listing)|Spider closed|ERROR" || true

echo
echo "== 1. Importing inboxes/product_inbox into $DATABASE_URL"
"$BIN/coles-loader" update --products --once --no-progress

echo
echo "== 2. Queueing SKUs without barcode"
"$BIN/coles-loader" queue-missing-barcodes

echo
echo "== 3. Crawling barcodes from the replica site"
"$BIN/scrapy" crawl coles_barcodes -s COLES_BASE_URL="$site" -s LOG_LEVEL=INFO \
    -s DOWNLOAD_DELAY=0 -s AUTOTHROTTLE_ENABLED=False -s COLES_STATS_FILE=var/last_crawl_stats.json \
    2>&1 | grep -E "\[colesbarcodes|Spider closed|ERROR" || true
echo "crawl stats: var/last_crawl_stats.json"

echo
echo "== 4. Data quality"
"$BIN/coles-loader" data-quality

echo
echo "== 5. Data-quality report"
"$BIN/coles-loader" report --out var/report.html
echo "open it in a browser: $(pwd)/var/report.html"

echo
echo "== 6. Both retailers: the products both sell, largest price difference first"
"$BIN/coles-loader" compare --per-product --limit 10
