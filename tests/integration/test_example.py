"""examples/ksm_offline_experiment.py against the test server, small machine.

Every expected counter below is derived by hand from
docs/SEMANTICS.md (rule ids cited) for SAME=4 pairwise
identical pages and UNIQUE=2 unique pages in each of the 2 processes, A
writing WRITES=1 of its merged pages.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from conftest import CLIENT_DIR, PY_STUBS, REPO

SAME, UNIQUE, WRITES = 4, 2, 1
ITEMS = 2 * (SAME + UNIQUE)                  # rmap_items: every mergeable page of A and B

# (label, shared, sharing, unshared, volatile, full_scans)
EXPECTED = [
    ("start", 0, 0, 0, 0, 0),                # CNT-6: counters move only when ksmd acts
    ("pass 1", 0, 0, 0, ITEMS, 1),           # SC-1 / CNT-4: first visits only store checksums
    ("pass 2", SAME, SAME, 2 * UNIQUE, 0, 2),  # SC-3: N pairs -> shared N, sharing N;
                                             # SC-4: unique unchanging pages -> unshared
    ("pass 3", SAME, SAME, 2 * UNIQUE, 0, 3),  # SCAN-10 / SC-4: unique pages stay unshared
    ("write", SAME, SAME, 2 * UNIQUE, 0, 3),   # COW-3, SC-6: lazy, nothing at write time
    ("pass 4", SAME, SAME - WRITES, 2 * UNIQUE, WRITES, 4),  # SC-6: B still maps the KSM page
                                             # (shared stays), A's item leaves the node and
                                             # is volatile (content changed)
    ("pass 5", SAME, SAME - WRITES, 2 * UNIQUE + WRITES, 0, 5),  # SC-5 / SCAN-10: A's new
                                             # content is stable now, unmatched -> unshared
    ("offline", SAME, SAME - WRITES, 2 * UNIQUE + WRITES, 0, 5),  # SC-8: KSM pages migrate,
                                             # counters and full_scans unchanged
    ("pause+drop", SAME, SAME - WRITES, 2 * UNIQUE + WRITES, 0, 5),  # SC-9 / CNT-6: both
                                             # mappings gone, KSM page freed, nobody looked
    ("resume", SAME - 1, SAME - WRITES - 1, 2 * UNIQUE + WRITES, 2, 5),  # SC-9 / HP-16:
                                             # MEM_OFFLINE prunes the stale node: shared-1,
                                             # sharing-1, its two items flagless -> volatile+2
    ("pass 6", SAME - 1, SAME - WRITES - 1, 2 * UNIQUE + WRITES, 0, 6),  # COW-5: the
                                             # items of the dropped addresses are freed
]

_STEP = re.compile(r"^(?P<label>\S.*?)\s+shared=(\d+) sharing=(\d+) unshared=(\d+) "
                   r"volatile=(\d+) full_scans=(\d+)$")


def test_ksm_offline_experiment(memnoded, tmp_path):
    png = tmp_path / "ksm.png"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(CLIENT_DIR), str(PY_STUBS)]),
               MPLCONFIGDIR=str(tmp_path / "mpl"))
    r = subprocess.run(
        [sys.executable, str(REPO / "examples" / "ksm_offline_experiment.py"),
         "--server", memnoded, "--out", str(png), "--same", str(SAME),
         "--unique", str(UNIQUE), "--writes", str(WRITES),
         "--blocks-per-node", "2", "--pages-per-block", "64"],
        env=env, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-6000:]
    lines = r.stdout.splitlines()

    steps = [m.group("label", 2, 3, 4, 5, 6) for m in map(_STEP.match, lines) if m]
    steps = [(s[0],) + tuple(int(v) for v in s[1:]) for s in steps]
    assert steps == EXPECTED, r.stdout

    final = json.loads(next(l for l in lines if l.startswith("FINAL "))[len("FINAL "):])
    assert final == {"shared": SAME - 1, "sharing": SAME - WRITES - 1,
                     "unshared": 2 * UNIQUE + WRITES, "volatile": 0, "full_scans": 6}
    assert "check: ok" in lines
    assert "1 stable node(s) pruned by MEM_OFFLINE" in r.stdout  # HP-16

    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000                    # a real plot, not an empty canvas
