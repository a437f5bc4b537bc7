#!/usr/bin/env bash
# Install the Debian packages the project drives, when missing, in one apt-get update + install:
#   chromium  — the crawl's bot-check browser. Playwright's own browser download needs the
#               internet; the project drives a system Chromium instead (COLES_CHROMIUM_PATH,
#               default /usr/bin/chromium).
#   tinyproxy — real forward proxies for the exit tests (COLES_TINYPROXY_PATH, default
#               /usr/bin/tinyproxy). The tests start their own instances on free ports; the
#               package's system service is not used, so whether it starts does not matter.
set -euo pipefail
browser="${COLES_CHROMIUM_PATH:-/usr/bin/chromium}"
tinyproxy="${COLES_TINYPROXY_PATH:-/usr/bin/tinyproxy}"

missing=()
[ -x "$browser" ] || missing+=(chromium)
[ -x "$tinyproxy" ] || missing+=(tinyproxy)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    for package in "${missing[@]}"; do
        case "$package" in
        chromium) echo "Chromium not found at $browser and apt-get is not available: install Chromium and set COLES_CHROMIUM_PATH" >&2 ;;
        tinyproxy) echo "tinyproxy not found at $tinyproxy and apt-get is not available: install tinyproxy and set COLES_TINYPROXY_PATH" >&2 ;;
        esac
    done
    exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
    sudo="sudo"
fi
echo "Installing ${missing[*]} from Debian's packages..." >&2
$sudo apt-get update -qq
# A package's service may fail to start where there is no init system (containers, CI):
# what counts is that the binaries are there afterwards.
if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null; then
    echo "apt-get install reported an error (a package's service may not have started); checking the binaries" >&2
fi
status=0
[ -x "$browser" ] || { echo "Chromium is still missing at $browser" >&2; status=1; }
[ -x "$tinyproxy" ] || { echo "tinyproxy is still missing at $tinyproxy" >&2; status=1; }
exit $status
