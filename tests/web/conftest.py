"""pytest set-up of tests/web (run as ``MEMNODE_BUILD_DIR=<abs build dir>
/usr/bin/python3 -m pytest -q tests/web`` by scripts/test-web.sh): the build's
Python stubs on sys.path; npm's folders are not collected."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("MEMNODE_BUILD_DIR", REPO / "build" / "release")).resolve()
if str(BUILD_DIR / "python") not in sys.path:
    sys.path.insert(0, str(BUILD_DIR / "python"))

collect_ignore_glob = ["node_modules/*", "gen/*"]
