#!/usr/bin/env bash
# Debian's chromium and the DejaVu fonts, for the test that renders the HTML report in a
# headless browser (tests/report_browser.rs). Idempotent: nothing happens when `chromium` (or
# the binary named by IISAN_CHROMIUM) is already on PATH. Needs apt-get, as root or with sudo.
set -euo pipefail
if command -v "${IISAN_CHROMIUM:-chromium}" >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO=sudo
fi
echo "installing Debian's chromium for the report's browser test" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
