"""The differential scenarios and the values the Linux 6.18 rules give for them.

Every expected value below is derived from the kernel's rules as described in
docs/SEMANTICS.md and docs/DIFFERENTIAL.md (ksmd's cmp_and_merge_page order,
smart_scan ages, stable-node chains, lazy counters, ...), with the reasoning
in a comment next to it. They are *not* copied from a run: the host half of
the test checks them against the real kernel, the memnode half checks
memnode against the host (or, without a host, against the recorded trails).

Conventions: "X" etc. are page contents made by ``seed(...)``; a page is
named ``<process>.<region>.<index>``; a frame label is
``<first page that had the frame>@<step tag>`` (observe.py). Unless a
scenario's ``knobs`` say otherwise, the kernel defaults are in force
(DEFAULT_KNOBS) and ksmd runs in lockstep: one full scan per ``pass`` step.
"""

from __future__ import annotations

from typing import Dict, List

from dsl import (At, Scenario, exec_, exit_, fill, fork, knob, madvise, mmap, munmap, passes,
                 prctl_get, prctl_set, seed, spawn, write, zero)
from observe import RMAP_ITEM_BYTES

EINVAL, EBUSY, ERANGE = 22, 16, 34
PAGE = 4096

# Kernel defaults of the knobs a scenario may depend on; written before
# every scenario (after run=2), then the scenario's own knobs.
DEFAULT_KNOBS = {
    "max_page_sharing": "256",
    "merge_across_nodes": "1",
    "stable_node_chains_prune_millisecs": "2000",
    "use_zero_pages": "0",
    "smart_scan": "1",
}

# Full scans in which a page that never merges is compared, with smart_scan:
# its age starts at 0 and grows at every visit or skip; ages 0-2 are never
# skipped; then it is skipped skip_age(age) times (1 for ages up to 3, 2 up
# to 5, 4 up to 8, then 8) between visits.
def smart_scan_visits(passes_: int) -> List[int]:
    visits, age, remaining = [], 0, 0
    for k in range(1, passes_ + 1):
        a = age
        age = min(age + 1, 255)
        if a < 3:
            visits.append(k)
            continue
        if remaining == 0:
            remaining = 1 if a <= 3 else 2 if a <= 5 else 4 if a <= 8 else 8
            visits.append(k)
            continue
        remaining -= 1
    return visits


def stat(rmap: int = 0, zero_: int = 0, merging: int = 0, merge_any: bool = False,
         mergeable: bool = True) -> Dict[str, object]:
    """ksm_stat of a process; ksm_process_profit by its formula."""
    return {"ksm_rmap_items": rmap, "ksm_zero_pages": zero_, "ksm_merging_pages": merging,
            "ksm_process_profit": (merging + zero_) * PAGE - rmap * RMAP_ITEM_BYTES,
            "ksm_merge_any": merge_any, "ksm_mergeable": mergeable}


def counters(shared=0, sharing=0, unshared=0, volatile=0, chains=0, dups=0, zero_=0,
             **extra) -> Dict[str, int]:
    """The counter subset most expectations check; general_profit from the
    formula with rmap_items = volatile + shared + sharing + unshared."""
    rmap = volatile + shared + sharing + unshared
    out = {"pages_shared": shared, "pages_sharing": sharing, "pages_unshared": unshared,
           "pages_volatile": volatile, "stable_node_chains": chains,
           "stable_node_dups": dups, "ksm_zero_pages": zero_,
           "general_profit": (sharing + zero_) * PAGE - rmap * RMAP_ITEM_BYTES}
    out.update(extra)
    return out


def pages(proc: str, region: str, idx) -> List[str]:
    return ["%s.%s.%d" % (proc, region, i) for i in idx]


def events_in_order(tag_names: List[str]):
    """A check: the step's events contain these tracepoints in this order
    (skipped when the world has no event log)."""
    def check(s, trail):
        ev = s.get("events")
        if ev is None:
            return
        names = [e[0] for e in ev]
        pos = -1
        for n in tag_names:
            try:
                pos = names.index(n, pos + 1)
            except ValueError:
                raise AssertionError("tracepoints %s not in this order: %s" % (tag_names, names))
    return check


# ---------------------------------------------------------------------------
# 1-2. smart_scan
# ---------------------------------------------------------------------------

def _smart_scan(on: bool) -> Scenario:
    n, npass = 16, 15 if on else 6
    visits = smart_scan_visits(npass) if on else list(range(1, npass + 1))
    expect, scanned, skipped = [], 0, 0
    for k in range(1, npass + 1):
        if k in visits:
            scanned += n
            # First visit: the rmap item only records the checksum (volatile).
            # Later visits: same checksum, nothing in the stable tree, no twin
            # in the unstable tree -> inserted there (unshared).
            unshared, volatile = (0, n) if k == 1 else (n, 0)
        else:
            # A skip removes the item from the unstable tree: volatile.
            skipped += n
            unshared, volatile = 0, n
        expect.append(At("pass%d" % k, counters=counters(
            unshared=unshared, volatile=volatile, full_scans=k, pages_scanned=scanned,
            pages_skipped=skipped), stat={"A": stat(rmap=n)}))
    return Scenario(
        name="smart_scan_schedule" if on else "smart_scan_off",
        doc=("16 distinct pages that never merge, %d full scans with smart_scan=%d: "
             "a never-merging page is compared in scans %s" % (npass, on, visits)),
        knobs={"smart_scan": "1" if on else "0"},
        ops=[spawn("A"), mmap("A", "r0", n), fill("A", "r0", 0, n, seed(0x5000, step=1)),
             madvise("A", "r0", 0, n, "mergeable")] + passes(npass),
        expect=expect)


# ---------------------------------------------------------------------------
# 3. the checksum-first delay (6.11)
# ---------------------------------------------------------------------------

def checksum_first_delay() -> Scenario:
    X = seed(0x6000)
    return Scenario(
        name="checksum_first_delay",
        doc=("Two identical pages merge in scan 2. A third identical page in a new mm "
             "meets the existing KSM page only on its second visit: since 6.11 a non-KSM "
             "page's checksum is compared before the stable tree is searched, and a new "
             "rmap item's first checksum never matches."),
        ops=[spawn("A"), mmap("A", "r0", 2), fill("A", "r0", 0, 2, X, tag="fillA"),
             madvise("A", "r0", 0, 2, "mergeable")] + passes(2) + [
             spawn("B"), mmap("B", "r1", 1), fill("B", "r1", 0, 1, X, tag="fillB"),
             madvise("B", "r1", 0, 1, "mergeable")] + passes(2),
        expect=[
            At("pass1", counters=counters(volatile=2, full_scans=1)),
            # A.r0.0 goes into the unstable tree; A.r0.1 finds it: the page
            # being scanned (A.r0.1) becomes the KSM page, the tree page's
            # pte is switched to it.
            At("pass2", counters=counters(shared=1, sharing=1, full_scans=2),
               groups={"A.r0.1@fillA": pages("A", "r0", [0, 1])},
               stat={"A": stat(rmap=2, merging=2)}),
            # B's page: first visit only records its checksum.
            At("pass3", counters=counters(shared=1, sharing=1, volatile=1, full_scans=3),
               pages={"B.r1.0": {"ksm": False, "label": "B.r1.0@fillB"}},
               stat={"B": stat(rmap=1)}),
            # Second visit: checksum unchanged -> stable tree -> merged.
            At("pass4", counters=counters(shared=1, sharing=2, full_scans=4),
               groups={"A.r0.1@fillA": ["A.r0.0", "A.r0.1", "B.r1.0"]},
               pages={"B.r1.0": {"mapcount": 3}},
               stat={"A": stat(rmap=2, merging=2), "B": stat(rmap=1, merging=1)},
               check=events_in_order(["ksm_start_scan", "ksm_merge_with_ksm_page",
                                      "ksm_stop_scan"])),
        ])


# ---------------------------------------------------------------------------
# 4. which frame survives
# ---------------------------------------------------------------------------

def survivor_across_processes() -> Scenario:
    n = 6
    return Scenario(
        name="survivor_across_processes",
        doc=("A and B hold the same 6 distinct contents at the same addresses; A is "
             "registered (and scanned) first. In scan 2 each of A's pages enters the "
             "unstable tree and B's twin, scanned later, keeps its frame as the KSM page. "
             "A third process joins through the stable tree two scans after it registers."),
        ops=[spawn("A"), spawn("B"), mmap("A", "r0", n), mmap("B", "r0", n),
             fill("A", "r0", 0, n, seed(0x7000, step=1), tag="fillA"),
             fill("B", "r0", 0, n, seed(0x7000, step=1), tag="fillB"),
             madvise("A", "r0", 0, n, "mergeable"), madvise("B", "r0", 0, n, "mergeable")]
            + passes(2) + [
             spawn("C"), mmap("C", "r0", 3), fill("C", "r0", 0, 3, seed(0x7000, step=1)),
             madvise("C", "r0", 0, 3, "mergeable")] + passes(2),
        expect=[
            At("pass2", counters=counters(shared=n, sharing=n),
               groups={"B.r0.%d@fillB" % i: ["A.r0.%d" % i, "B.r0.%d" % i] for i in range(n)},
               pages={"A.r0.0": {"mapcount": 2}}),
            At("pass3", counters=counters(shared=n, sharing=n, volatile=3)),
            At("pass4", counters=counters(shared=n, sharing=n + 3),
               groups=dict({"B.r0.%d@fillB" % i: ["A.r0.%d" % i, "B.r0.%d" % i, "C.r0.%d" % i]
                            for i in range(3)},
                           **{"B.r0.%d@fillB" % i: ["A.r0.%d" % i, "B.r0.%d" % i]
                              for i in range(3, n)}),
               pages={"C.r0.0": {"mapcount": 3}},
               stat={"A": stat(rmap=n, merging=n), "B": stat(rmap=n, merging=n),
                     "C": stat(rmap=3, merging=3)}),
        ])


# ---------------------------------------------------------------------------
# 5-6. stable node chains and dups
# ---------------------------------------------------------------------------

def chain_dups_mps2() -> Scenario:
    return Scenario(
        name="chain_dups_mps2",
        doc=("9 identical pages with max_page_sharing=2: pairs merge into KSM pages of "
             "2 mappings each (a full dup is not a merge candidate, so the next page goes "
             "to the unstable tree and pairs with the one after it); the second KSM page "
             "turns the stable node into a chain. 4 dups, one page left unshared."),
        knobs={"max_page_sharing": "2", "stable_node_chains_prune_millisecs": "1000000000"},
        ops=[spawn("A"), mmap("A", "r0", 9), fill("A", "r0", 0, 9, seed(0x8000), tag="fill"),
             madvise("A", "r0", 0, 9, "mergeable")] + passes(3),
        expect=[
            At("pass2", counters=counters(shared=4, sharing=4, unshared=1, chains=1, dups=4),
               groups={"A.r0.%d@fill" % (2 * i + 1): pages("A", "r0", [2 * i, 2 * i + 1])
                       for i in range(4)},
               pages={"A.r0.8": {"ksm": False, "mapcount": 1},
                      "A.r0.0": {"mapcount": 2}},
               stat={"A": stat(rmap=9, merging=8)}),
            # Scan 3: KSM pages are left alone, the odd page re-enters the unstable tree.
            At("pass3", counters=counters(shared=4, sharing=4, unshared=1, chains=1, dups=4)),
        ])


def chain_k2_mps4() -> Scenario:
    X, Y = seed(0x8100), seed(0x8200)
    return Scenario(
        name="chain_two_contents_mps4",
        doc=("Two contents, 9 copies each, max_page_sharing=4: per content two full KSM "
             "pages (4 mappings) in one chain and one page left in the unstable tree."),
        knobs={"max_page_sharing": "4", "stable_node_chains_prune_millisecs": "1000000000"},
        ops=[spawn("A"), mmap("A", "r0", 9), mmap("A", "r1", 9),
             fill("A", "r0", 0, 9, X, tag="fillX"), fill("A", "r1", 0, 9, Y, tag="fillY"),
             madvise("A", "r0", 0, 9, "mergeable"), madvise("A", "r1", 0, 9, "mergeable")]
            + passes(2),
        expect=[
            At("pass2", counters=counters(shared=4, sharing=12, unshared=2, chains=2, dups=4),
               groups={"A.r0.1@fillX": pages("A", "r0", range(0, 4)),
                       "A.r0.5@fillX": pages("A", "r0", range(4, 8)),
                       "A.r1.1@fillY": pages("A", "r1", range(0, 4)),
                       "A.r1.5@fillY": pages("A", "r1", range(4, 8))},
               pages={"A.r0.0": {"mapcount": 4}}),
        ])


def _chain_prune(prune_ms: str) -> Scenario:
    """max_page_sharing=3. B: 5 pages X -> dup1 {b0,b1,b2} (full) and dup2
    {b3,b4} in one chain; dup2 is at the head of the chain's list. A: a page
    Y that never merges (scanned first in every pass, so it searches the
    stable tree through the chain) and a page a0 = X that becomes mergeable
    after scan 2. Then b0-b2 are written: dup1's KSM page is freed, dup1 is
    stale."""
    X, Y = seed(0x9000), seed(0x9100)
    prune = prune_ms == "0"
    ops = [spawn("A"), mmap("A", "r0", 1), fill("A", "r0", 0, 1, Y, tag="fillY"),
           mmap("A", "r1", 1), fill("A", "r1", 0, 1, X, tag="fillA0"),
           madvise("A", "r0", 0, 1, "mergeable"),
           spawn("B"), mmap("B", "r2", 5), fill("B", "r2", 0, 5, X, tag="fillB"),
           madvise("B", "r2", 0, 5, "mergeable")] + passes(2) + [
           madvise("A", "r1", 0, 1, "mergeable", tag="a0_on")] + passes(1) + [
           write("B", "r2", 0, 0xB0, tag="w0"), write("B", "r2", 1, 0xB1, tag="w1"),
           write("B", "r2", 2, 0xB2, tag="w2")] + passes(2)
    expect = [
        At("pass2", counters=counters(shared=2, sharing=3, unshared=1, chains=1, dups=2),
           groups={"B.r2.1@fillB": pages("B", "r2", [0, 1, 2]),
                   "B.r2.4@fillB": pages("B", "r2", [3, 4])}),
        # a0's first visit only records its checksum.
        At("pass3", counters=counters(shared=2, sharing=3, unshared=1, volatile=1, chains=1,
                                      dups=2)),
        # Writes break COW (cow_ksm counts them) but the counters wait for ksmd.
        At("w2", counters=counters(shared=2, sharing=3, unshared=1, volatile=1, chains=1,
                                   dups=2, cow_ksm=3),
           stat={"B": stat(rmap=5, merging=5)}),
    ]
    if prune:
        # Scan 4, prune_millisecs=0: Y's stable search walks every dup of the
        # chain, finds dup1 stale and removes it (its 3 rmap items lose their
        # stable node); dup2 is then alone and the chain collapses into it.
        # a0 then joins dup2 (3 mappings). b0-b2 changed: checksum only.
        expect.append(At("pass4", counters=counters(shared=1, sharing=2, unshared=1, volatile=3,
                                                    chains=0, dups=0),
                         groups={"B.r2.4@fillB": ["A.r1.0", "B.r2.3", "B.r2.4"]},
                         check=events_in_order(["ksm_remove_ksm_page",
                                                "ksm_merge_with_ksm_page"])))
    else:
        # Scan 4, prune never due: the walk stops at dup2 (a merge candidate
        # at the head), dup1 stays on the chain until b0's visit finds its
        # rmap item's node stale and removes it: the chain keeps one dup.
        expect.append(At("pass4", counters=counters(shared=1, sharing=2, unshared=1, volatile=3,
                                                    chains=1, dups=1),
                         groups={"B.r2.4@fillB": ["A.r1.0", "B.r2.3", "B.r2.4"]},
                         check=events_in_order(["ksm_merge_with_ksm_page",
                                                "ksm_remove_ksm_page"])))
    # Scan 5: Y (age 4) is skipped; b0-b2 are compared (stable tree: any
    # search through a chain with a single dup collapses it), then inserted
    # into the unstable tree.
    expect.append(At("pass5", counters=counters(shared=1, sharing=2, unshared=3, volatile=1,
                                                chains=0, dups=0, pages_skipped=1)))
    return Scenario(
        name="chain_prune_%s" % ("zero" if prune else "never"),
        doc=_chain_prune.__doc__ + (" stable_node_chains_prune_millisecs=%s." % prune_ms),
        knobs={"max_page_sharing": "3", "stable_node_chains_prune_millisecs": prune_ms},
        ops=ops, expect=expect)


# ---------------------------------------------------------------------------
# 7. max_page_sharing / merge_across_nodes / run write rules
# ---------------------------------------------------------------------------

def knob_rules_with_ksm_pages() -> Scenario:
    X = seed(0xA000)
    return Scenario(
        name="max_page_sharing_knob_rules",
        doc=("max_page_sharing and merge_across_nodes refuse changes (EBUSY) while KSM "
             "pages exist, accept a write of the current value, return their parser's "
             "error (ERANGE on overflow) and accept changes again after run=2. run=2 "
             "unmerges at once, resets full_scans but not pages_scanned."),
        ops=[spawn("A"), mmap("A", "r0", 2), fill("A", "r0", 0, 2, X),
             madvise("A", "r0", 0, 2, "mergeable")] + passes(2) + [
             knob("max_page_sharing", "3", tag="mps_busy"),
             knob("max_page_sharing", "256", tag="mps_same"),
             knob("max_page_sharing", "1", tag="mps_one"),
             knob("max_page_sharing", "-5", tag="mps_neg"),
             knob("max_page_sharing", "2147483648", tag="mps_range"),
             knob("merge_across_nodes", "0", tag="man_busy"),
             knob("merge_across_nodes", "1", tag="man_same"),
             knob("merge_across_nodes", "2", tag="man_two"),
             knob("merge_across_nodes", "18446744073709551616", tag="man_range"),
             knob("run", "3", tag="run_three"),
             knob("run", "2", tag="unmerge"),
             knob("max_page_sharing", "3", tag="mps_ok"),
             knob("merge_across_nodes", "0", tag="man_ok"),
             knob("merge_across_nodes", "1", tag="man_back")] + passes(2),
        expect=[
            At("pass2", counters=counters(shared=1, sharing=1, full_scans=2, pages_scanned=4)),
            At("mps_busy", result={"errno": EBUSY, "readback": "256\n"}),
            At("mps_same", result={"errno": 0, "readback": "256\n"}),
            At("mps_one", result={"errno": EINVAL, "readback": "256\n"}),
            At("mps_neg", result={"errno": EINVAL, "readback": "256\n"}),
            At("mps_range", result={"errno": ERANGE, "readback": "256\n"}),
            At("man_busy", result={"errno": EBUSY, "readback": "1\n"}),
            At("man_same", result={"errno": 0, "readback": "1\n"}),
            At("man_two", result={"errno": EINVAL, "readback": "1\n"}),
            At("man_range", result={"errno": ERANGE, "readback": "1\n"}),
            At("run_three", result={"errno": EINVAL, "readback": "0\n"},
               counters=counters(shared=1, sharing=1, full_scans=2)),
            # run=2: every KSM mapping is unshared now (two COW copies).
            At("unmerge", result={"errno": 0, "readback": "2\n"},
               counters=counters(full_scans=0, pages_scanned=4, cow_ksm=2, run=2),
               stat={"A": stat(rmap=0, merging=0)}),
            At("mps_ok", result={"errno": 0, "readback": "3\n"}),
            At("man_ok", result={"errno": 0, "readback": "0\n"}),
            At("man_back", result={"errno": 0, "readback": "1\n"}),
            # ksmd starts over: fresh rmap items, merge in the second scan.
            At("pass3", counters=counters(volatile=2, full_scans=1, pages_scanned=6)),
            At("pass4", counters=counters(shared=1, sharing=1, full_scans=2, pages_scanned=8)),
        ])


# ---------------------------------------------------------------------------
# 8-10. zero pages
# ---------------------------------------------------------------------------

def zero_pages_ordinary() -> Scenario:
    return Scenario(
        name="zero_pages_ordinary",
        doc="use_zero_pages=0: zero-filled anonymous pages merge like any content.",
        ops=[spawn("A"), mmap("A", "r0", 8), fill("A", "r0", 0, 8, zero(), tag="fill"),
             madvise("A", "r0", 0, 8, "mergeable")] + passes(2),
        expect=[At("pass2", counters=counters(shared=1, sharing=7),
                   groups={"A.r0.1@fill": pages("A", "r0", range(8))},
                   pages={"A.r0.0": {"zero": False, "mapcount": 8}})])


def use_zero_pages() -> Scenario:
    X = seed(0xB000)
    return Scenario(
        name="use_zero_pages",
        doc=("use_zero_pages=1: zero-filled pages are replaced by the shared zero page "
             "(ksm_zero_pages, no KSM page); their rmap items go at the next scan. A write "
             "to such a page or MADV_UNMERGEABLE gives it a private page again and "
             "ksm_zero_pages drops at once (no cow_ksm: the zero page is no KSM page)."),
        knobs={"use_zero_pages": "1"},
        ops=[spawn("A"), mmap("A", "r0", 8), mmap("A", "r1", 2),
             fill("A", "r0", 0, 8, zero()), fill("A", "r1", 0, 2, X, tag="fillX"),
             madvise("A", "r0", 0, 8, "mergeable"), madvise("A", "r1", 0, 2, "mergeable")]
            + passes(3) + [
             write("A", "r0", 0, 0x1, tag="cow_zero"),
             madvise("A", "r0", 1, 7, "unmergeable", tag="unshare_zero")] + passes(1),
        expect=[
            At("pass1", counters=counters(volatile=10)),
            # Second visit: checksum == zero_checksum -> zero page.
            At("pass2", counters=counters(shared=1, sharing=1, volatile=8, zero_=8,
                                          pages_scanned=20),
               groups={"A.r1.1@fillX": pages("A", "r1", [0, 1])},
               pages={"A.r0.%d" % i: {"label": "zero", "zero": True, "ksm": False}
                      for i in range(8)},
               stat={"A": stat(rmap=10, zero_=8, merging=2)},
               check=events_in_order(["ksm_start_scan", "ksm_merge_one_page",
                                      "ksm_stop_scan"])),
            # Zero-page ptes are not returned to ksmd: their items are freed.
            At("pass3", counters=counters(shared=1, sharing=1, zero_=8, pages_scanned=22),
               stat={"A": stat(rmap=2, zero_=8, merging=2)}),
            At("cow_zero", counters=counters(shared=1, sharing=1, zero_=7, cow_ksm=0),
               pages={"A.r0.0": {"zero": False, "ksm": False, "label": "A.r0.0@cow_zero"}},
               stat={"A": stat(rmap=2, zero_=7, merging=2)}),
            At("unshare_zero", result={"errno": 0},
               counters=counters(shared=1, sharing=1, zero_=0, cow_ksm=0),
               pages={"A.r0.%d" % i: {"zero": False, "label": "A.r0.%d@unshare_zero" % i}
                      for i in range(1, 8)},
               stat={"A": stat(rmap=2, zero_=0, merging=2)}),
            # A.r0.0 (still mergeable) is a new rmap item: checksum only.
            At("pass4", counters=counters(shared=1, sharing=1, volatile=1)),
        ])


def fork_zero_pages() -> Scenario:
    return Scenario(
        name="fork_zero_pages",
        doc=("A fork copies KSM-placed zero-page ptes: the child starts with its own "
             "ksm_zero_pages (and the global count grows by it) but no rmap items and no "
             "merging pages (6.18 stable: the child's counters are reset at fork); its "
             "exit gives them back."),
        knobs={"use_zero_pages": "1"},
        ops=[spawn("A"), mmap("A", "r0", 4), fill("A", "r0", 0, 4, zero()),
             madvise("A", "r0", 0, 4, "mergeable")] + passes(2) + [
             fork("A", "B", tag="fork"), exit_("B", tag="exitB")] + passes(1),
        expect=[
            At("pass2", counters=counters(volatile=4, zero_=4),
               stat={"A": stat(rmap=4, zero_=4)}),
            At("fork", counters=counters(volatile=4, zero_=8),
               stat={"A": stat(rmap=4, zero_=4), "B": stat(zero_=4)},
               pages={"B.r0.0": {"label": "zero", "zero": True}}),
            At("exitB", counters=counters(volatile=4, zero_=4), stat={"B": None}),
            At("pass3", counters=counters(zero_=4), stat={"A": stat(zero_=4)}),
        ])


# ---------------------------------------------------------------------------
# 11. fork of merged pages
# ---------------------------------------------------------------------------

def fork_bypass() -> Scenario:
    X = seed(0xC000)
    return Scenario(
        name="fork_ksm_bypass",
        doc=("max_page_sharing=2. A's 2 pages share one KSM page; after fork B maps it "
             "too. ksmd adds B's mappings to the same stable node beyond the limit (a "
             "forked KSM page bypasses max_page_sharing). A COW write in B and B's exit "
             "are accounted at ksmd's next visit (the exited mm is reaped first)."),
        knobs={"max_page_sharing": "2"},
        ops=[spawn("A"), mmap("A", "r0", 2), fill("A", "r0", 0, 2, X, tag="fill"),
             madvise("A", "r0", 0, 2, "mergeable")] + passes(2) + [
             fork("A", "B", tag="fork")] + passes(1) + [
             write("B", "r0", 0, 0x42, tag="cowB")] + passes(1) + [
             exit_("B", tag="exitB")] + passes(1),
        expect=[
            At("pass2", counters=counters(shared=1, sharing=1),
               groups={"A.r0.1@fill": pages("A", "r0", [0, 1])}),
            # The child inherits the VMA flags but no rmap items.
            At("fork", counters=counters(shared=1, sharing=1),
               groups={"A.r0.1@fill": ["A.r0.0", "A.r0.1", "B.r0.0", "B.r0.1"]},
               pages={"B.r0.0": {"mapcount": 4}},
               stat={"A": stat(rmap=2, merging=2), "B": stat()}),
            At("pass3", counters=counters(shared=1, sharing=3),
               stat={"B": stat(rmap=2, merging=2)}),
            At("cowB", counters=counters(shared=1, sharing=3, cow_ksm=1),
               pages={"B.r0.0": {"ksm": False, "label": "B.r0.0@cowB"},
                      "A.r0.0": {"mapcount": 3}}),
            At("pass4", counters=counters(shared=1, sharing=2, volatile=1),
               stat={"B": stat(rmap=2, merging=1)}),
            At("exitB", counters=counters(shared=1, sharing=2, volatile=1), stat={"B": None},
               pages={"A.r0.0": {"mapcount": 2}}),
            At("pass5", counters=counters(shared=1, sharing=1),
               stat={"A": stat(rmap=2, merging=2)}),
        ])


# ---------------------------------------------------------------------------
# 12-13. prctl(PR_SET_MEMORY_MERGE)
# ---------------------------------------------------------------------------

def prctl_merge_any() -> Scenario:
    X = seed(0xD000)
    return Scenario(
        name="prctl_merge_any",
        doc=("PR_SET_MEMORY_MERGE=1 makes existing and later VMAs mergeable without "
             "madvise; PR_SET_MEMORY_MERGE=0 unmerges everything at once (COW copies) and "
             "clears the flags; ksmd then finds no mergeable VMA, drops the rmap items and "
             "the mm."),
        needs=("prctl",),
        ops=[spawn("A"), mmap("A", "r0", 4), fill("A", "r0", 0, 4, X, tag="fill0"),
             prctl_get("A", tag="get0"), prctl_set("A", 1, tag="set1"),
             prctl_get("A", tag="get1"), mmap("A", "r1", 4, tag="mmap_after"),
             fill("A", "r1", 0, 4, X)] + passes(2) + [
             prctl_set("A", 0, tag="set0"), prctl_get("A", tag="get2")] + passes(1),
        expect=[
            At("get0", result={"errno": 0, "value": 0}),
            At("set1", result={"errno": 0}, stat={"A": stat(merge_any=True)}),
            At("get1", result={"errno": 0, "value": 1}),
            At("pass2", counters=counters(shared=1, sharing=7),
               groups={"A.r0.1@fill0": pages("A", "r0", range(4)) + pages("A", "r1", range(4))},
               stat={"A": stat(rmap=8, merging=8, merge_any=True)}),
            At("set0", result={"errno": 0}, counters=counters(shared=1, sharing=7, cow_ksm=8),
               stat={"A": stat(rmap=8, merging=8, merge_any=False, mergeable=False)}),
            At("get2", result={"errno": 0, "value": 0}),
            At("pass3", counters=counters(), stat={"A": stat(mergeable=False)}),
        ])


def prctl_fork_exec() -> Scenario:
    X = seed(0xD100)
    return Scenario(
        name="prctl_fork_exec",
        doc=("MMF_VM_MERGE_ANY is inherited by fork and (6.18 stable) kept across exec, "
             "which registers the new mm before the old one goes. When ksmd finds no "
             "mergeable VMA in an mm it drops the mm's slot but (6.18 stable) keeps "
             "MMF_VM_MERGE_ANY: the next mapping is mergeable and registers the mm again."),
        needs=("prctl", "exec"),
        ops=[spawn("A"), prctl_set("A", 1), mmap("A", "r0", 4), fork("A", "B", tag="fork"),
             fill("A", "r0", 0, 4, X, tag="fillA"), fill("B", "r0", 0, 4, X),
             prctl_get("B", tag="getB")] + passes(2) + [
             exec_("B", tag="execB"), prctl_get("B", tag="getB2")] + passes(1) + [
             prctl_get("B", tag="getB3"), mmap("B", "r1", 2, tag="mmapB"),
             fill("B", "r1", 0, 2, X)] + passes(2),
        expect=[
            At("fork", stat={"B": stat(merge_any=True)}),
            At("getB", result={"errno": 0, "value": 1}),
            At("pass2", counters=counters(shared=1, sharing=7),
               groups={"A.r0.1@fillA": pages("A", "r0", range(4)) + pages("B", "r0", range(4))},
               stat={"A": stat(rmap=4, merging=4, merge_any=True),
                     "B": stat(rmap=4, merging=4, merge_any=True)}),
            # Lazy: the old mm's mappings are gone, its rmap items are not.
            At("execB", counters=counters(shared=1, sharing=7),
               stat={"B": stat(merge_any=True, mergeable=False)},
               check=events_in_order(["ksm_enter", "ksm_exit"])),
            At("getB2", result={"errno": 0, "value": 1}),
            # The exited mm is reaped (its 4 items go); the new mm has no
            # mergeable VMA: its slot goes, MMF_VM_MERGE_ANY stays.
            At("pass3", counters=counters(shared=1, sharing=3),
               stat={"B": stat(merge_any=True, mergeable=False)}),
            At("getB3", result={"errno": 0, "value": 1}),
            At("mmapB", stat={"B": stat(merge_any=True, mergeable=True)},
               check=events_in_order(["ksm_enter"])),
            At("pass4", counters=counters(shared=1, sharing=3, volatile=2)),
            At("pass5", counters=counters(shared=1, sharing=5),
               groups={"A.r0.1@fillA": pages("A", "r0", range(4)) + pages("B", "r1", [0, 1])},
               stat={"B": stat(rmap=2, merging=2, merge_any=True)}),
        ])


# ---------------------------------------------------------------------------
# 14-16. COW, MADV_UNMERGEABLE, munmap: lazy counters
# ---------------------------------------------------------------------------

def cow_and_unmerge_lazy() -> Scenario:
    X = seed(0xE000)
    return Scenario(
        name="cow_and_unmergeable_lazy",
        doc=("8 pages on one KSM page. COW writes and MADV_UNMERGEABLE copy pages at once "
             "(cow_ksm counts each copy) but pages_shared/pages_sharing and "
             "ksm_merging_pages change only when ksmd visits the rmap items."),
        ops=[spawn("A"), mmap("A", "r0", 8), fill("A", "r0", 0, 8, X, tag="fill"),
             madvise("A", "r0", 0, 8, "mergeable")] + passes(2) + [
             write("A", "r0", 0, 0x10, tag="w0"), write("A", "r0", 1, 0x11, tag="w1"),
             write("A", "r0", 2, 0x12, tag="w2")] + passes(2) + [
             madvise("A", "r0", 3, 5, "unmergeable", tag="unmerge")] + passes(1),
        expect=[
            At("pass2", counters=counters(shared=1, sharing=7),
               groups={"A.r0.1@fill": pages("A", "r0", range(8))}),
            At("w2", counters=counters(shared=1, sharing=7, cow_ksm=3),
               groups={"A.r0.1@fill": pages("A", "r0", range(3, 8))},
               pages={"A.r0.0": {"ksm": False, "label": "A.r0.0@w0"},
                      "A.r0.3": {"mapcount": 5}},
               stat={"A": stat(rmap=8, merging=8)}),
            At("pass3", counters=counters(shared=1, sharing=4, volatile=3),
               stat={"A": stat(rmap=8, merging=5)}),
            At("pass4", counters=counters(shared=1, sharing=4, unshared=3)),
            At("unmerge", result={"errno": 0},
               counters=counters(shared=1, sharing=4, unshared=3, cow_ksm=8), groups={}),
            # Scan 5: the written pages (age 4) are skipped; the items of the
            # now unmergeable VMA are removed, and with them the stale node.
            At("pass5", counters=counters(volatile=3, pages_skipped=3),
               stat={"A": stat(rmap=3, merging=0)}),
        ])


def munmap_partial() -> Scenario:
    X = seed(0xE100)
    return Scenario(
        name="munmap_partial",
        doc=("Unmapping half of 8 merged pages drops their mappings at once; ksmd "
             "removes their rmap items (and the sharing count) at its next scan."),
        ops=[spawn("A"), mmap("A", "r0", 8), fill("A", "r0", 0, 8, X, tag="fill"),
             madvise("A", "r0", 0, 8, "mergeable")] + passes(2) + [
             munmap("A", "r0", 4, 4, tag="unmap")] + passes(1),
        expect=[
            At("unmap", result={"errno": 0}, counters=counters(shared=1, sharing=7),
               groups={"A.r0.1@fill": pages("A", "r0", range(4))},
               pages={"A.r0.0": {"mapcount": 4}}, stat={"A": stat(rmap=8, merging=8)}),
            At("pass3", counters=counters(shared=1, sharing=3),
               stat={"A": stat(rmap=4, merging=4)}),
        ])


def run2_unmerge() -> Scenario:
    X = seed(0xE200)
    return Scenario(
        name="run2_unmerge",
        doc=("run=2 unmerges every KSM page and frees every rmap item at once, resets "
             "full_scans to 0 and leaves pages_scanned / pages_skipped alone; the next "
             "run=1 starts over (checksums first, merges in the second scan)."),
        ops=[spawn("A"), mmap("A", "r0", 8), mmap("A", "r1", 4),
             fill("A", "r0", 0, 8, X), fill("A", "r1", 0, 4, seed(0xE300, step=1)),
             madvise("A", "r0", 0, 8, "mergeable"), madvise("A", "r1", 0, 4, "mergeable")]
            + passes(3) + [knob("run", "2", tag="unmerge")] + passes(2),
        expect=[
            At("pass3", counters=counters(shared=1, sharing=7, unshared=4, full_scans=3,
                                          pages_scanned=36)),
            At("unmerge", result={"errno": 0, "readback": "2\n"},
               counters=counters(full_scans=0, pages_scanned=36, cow_ksm=8, run=2),
               groups={}, stat={"A": stat()}),
            At("pass4", counters=counters(volatile=12, full_scans=1, pages_scanned=48)),
            At("pass5", counters=counters(shared=1, sharing=7, unshared=4, full_scans=2),
               groups={"A.r0.1@unmerge": pages("A", "r0", range(8))}),
        ])


# ---------------------------------------------------------------------------
# 17. VMA compatibility
# ---------------------------------------------------------------------------

def shared_vma_ignored() -> Scenario:
    X = seed(0xF000)
    return Scenario(
        name="shared_vma_ignored",
        doc=("MADV_MERGEABLE on a MAP_SHARED mapping succeeds but is ignored (the VMA is "
             "not KSM-compatible): the mm is not registered and ksmd never visits those "
             "pages; a private region of the same process merges as usual."),
        ops=[spawn("A"), mmap("A", "r0", 4, shared=True), fill("A", "r0", 0, 4, X),
             madvise("A", "r0", 0, 4, "mergeable", tag="adv_shared"),
             mmap("A", "r1", 2), fill("A", "r1", 0, 2, X, tag="fill1"),
             madvise("A", "r1", 0, 2, "mergeable")] + passes(2),
        expect=[
            At("adv_shared", result={"errno": 0}, stat={"A": stat(mergeable=False)}),
            At("pass2", counters=counters(shared=1, sharing=1, pages_scanned=4),
               groups={"A.r1.1@fill1": pages("A", "r1", [0, 1])},
               pages={"A.r0.0": {"ksm": False}}),
        ])


SCENARIOS: List[Scenario] = [
    _smart_scan(True),
    _smart_scan(False),
    checksum_first_delay(),
    survivor_across_processes(),
    chain_dups_mps2(),
    chain_k2_mps4(),
    _chain_prune("0"),
    _chain_prune("1000000000"),
    knob_rules_with_ksm_pages(),
    zero_pages_ordinary(),
    use_zero_pages(),
    fork_zero_pages(),
    fork_bypass(),
    prctl_merge_any(),
    prctl_fork_exec(),
    cow_and_unmerge_lazy(),
    munmap_partial(),
    run2_unmerge(),
    shared_vma_ignored(),
]

BY_NAME = {s.name: s for s in SCENARIOS}
assert len(BY_NAME) == len(SCENARIOS)
