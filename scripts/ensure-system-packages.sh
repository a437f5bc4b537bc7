#!/usr/bin/env bash
# Install Debian's Chromium when no browser is configured or present. Playwright's own
# browser download needs the internet; the project drives a system Chromium instead
# (COLES_CHROMIUM_PATH, default /usr/bin/chromium).
set -euo pipefail
browser="${COLES_CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$browser" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "Chromium not found at $browser and apt-get is not available: install Chromium and set COLES_CHROMIUM_PATH" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
    sudo="sudo"
fi
echo "Installing Chromium from Debian's packages..." >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
test -x "$browser"
