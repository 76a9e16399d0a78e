#!/usr/bin/env bash
# The report screenshots of docs/report/: the HTML report of each run set rendered by headless
# Chromium at 1280 px wide, the page's blank bottom trimmed and the colours reduced to a
# palette (Pillow, in a virtual environment of its own under target/).
#   bash scripts/report-screenshots.sh NAME RUN_DIR...    -> docs/report/NAME.png (and .html)
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=$1; shift
bash scripts/install-chromium.sh
VENV=target/shots-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet "pillow>=10,<13"
mkdir -p docs/report
./target/release/iisan report --html "docs/report/$NAME.html" "$@"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"${IISAN_CHROMIUM:-chromium}" --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
  --user-data-dir="$tmp/profile" --window-size=1280,12000 \
  --screenshot="$tmp/page.png" "file://$PWD/docs/report/$NAME.html" 2>/dev/null
"$VENV/bin/python" - "$tmp/page.png" "docs/report/$NAME.png" <<'PY'
import sys
from PIL import Image, ImageChops
page = Image.open(sys.argv[1]).convert("RGB")
# the bounding box of everything that is not the white background, plus a margin
box = ImageChops.difference(page, Image.new("RGB", page.size, "white")).getbbox()
page = page.crop((0, 0, page.width, min(page.height, box[3] + 24)))
page.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(sys.argv[2], optimize=True)
print(f"{sys.argv[2]}: {page.width} x {page.height}")
PY
