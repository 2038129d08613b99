"""The scan-time advisor (advisor_mode=scan-time, Linux 6.8+) as a pure
function of its inputs, for the replay check (docs/DIFFERENTIAL.md).

After every full scan the advisor recomputes pages_to_scan from the scan's
duration in whole seconds (at least 1) and ksmd's CPU share during it in
percent (at least 1); both are in the ksm_advisor tracepoint, together with
the result. Its state is reset when the mode is switched on: pages_to_scan =
advisor_min_pages_to_scan, no previous scan time, change 0.

  factor  = target_scan_time * 100 / scan_time            (at least 1)
  change  = scan_time * 100 / previous scan_time           (at least 1;
            the first scan uses its own time as the previous one)
  change  = (70 * previous change + 30 * change) / 100     (EWMA, weight 30)
  pages   = pages_to_scan * 100 / factor * change / 100
  cost    = pages_to_scan / cpu_percent                     (at least 1)
  pages   = min(pages, cost * max_cpu), then max(pages, cost * 10),
            then min(pages, max_pages_to_scan)

All divisions are integer divisions.
"""

from __future__ import annotations

from typing import Iterable, List, Tuple

EWMA_WEIGHT = 30
MIN_CPU = 10


def replay(inputs: Iterable[Tuple[int, int]], min_pages: int, max_pages: int, max_cpu: int,
           target_scan_time: int) -> List[int]:
    """pages_to_scan after each scan, for (scan_time_s, cpu_percent) inputs."""
    pages_to_scan, prev_scan_time, prev_change = min_pages, 0, 0
    out = []
    for scan_time, cpu_percent in inputs:
        last = prev_scan_time or scan_time
        factor = (target_scan_time * 100) // scan_time or 1
        change = (scan_time * 100) // last or 1
        change = ((100 - EWMA_WEIGHT) * prev_change + EWMA_WEIGHT * change) // 100
        pages = ((pages_to_scan * 100) // factor) * change // 100
        cost = pages_to_scan // cpu_percent or 1
        pages = min(pages, cost * max_cpu)
        pages = max(pages, cost * MIN_CPU)
        pages = min(pages, max_pages)
        prev_change, prev_scan_time, pages_to_scan = change, scan_time, pages
        out.append(pages)
    return out
