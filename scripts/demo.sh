#!/usr/bin/env bash
# The main job on the embedded default: SQLite under var/, the bundled sample inbox.
# Import the product files, post-process, print the data-quality summary.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"

mkdir -p inboxes/product_inbox
# Drop the bundled sample files into the inbox (re-importing them is harmless: nothing
# is done twice).
for sample in examples/product_inbox/*.jsonl; do
    cp "$sample" "inboxes/product_inbox/$(basename "$sample")"
done

echo "== Importing inboxes/product_inbox (database: ${DATABASE_URL:-sqlite:///var/colesbarcodes.sqlite3})"
"$BIN/coles-loader" update --products --once

echo
echo "== Data quality"
"$BIN/coles-loader" data-quality
