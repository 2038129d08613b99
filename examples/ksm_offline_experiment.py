#!/usr/bin/python3
"""KSM + memory hot-remove experiment on a MANUAL memnode machine, plotted.

Two processes A and B (on node 1: pfn 0 is the zero page, so block 0 of
node 0 can never be offlined) each map SAME pages that are pairwise identical
(A's page i == B's page i) and UNIQUE pages nobody else has. Then, recording
the KSM counters after every step (scenarios of docs/SEMANTICS.md):

  pass 1..3   ksmd passes: SC-1/SC-3 merge in pass 2, SC-4 unique pages unshared
  write       A writes to its first WRITES merged pages (COW, SC-6: lazy counters)
  pass x2     ksmd notices: sharing drops, A's pages volatile then unshared
  offline     offline the block of a KSM page: it migrates, counters unchanged (SC-8)
  pause+drop  offline of the block now holding KSM page P paused after
              MEM_GOING_OFFLINE; A and B both drop P (MADV_DONTNEED): P is freed
  resume      MEM_OFFLINE prunes P's stale node: shared-1, sharing-1, volatile+2
              (SC-9, the race the seed closes)
  pass        ksmd frees the two items of the dropped addresses

and plots shared / sharing / unshared / volatile against the step to --out.

    /usr/bin/python3 examples/ksm_offline_experiment.py --out ksm.png \\
        --memnoded build/release/server/memnoded        # or --server HOST:PORT

Needs the memnode package (pip install ./client/python, or PYTHONPATH=
client/python:<build>/python) and Debian's python3-matplotlib.
"""
import argparse
import json
import os
import subprocess
import sys
import threading

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from memnode import Client, PAGE_SIZE  # noqa: E402

COUNTERS = ("shared", "sharing", "unshared", "volatile")


def start_memnoded(path):
    """Starts memnoded on a free loopback port; returns (process, address)."""
    proc = subprocess.Popen([path, "--listen=127.0.0.1:0"], stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    for line in proc.stdout:                 # the server prints "LISTENING host:port"
        if line.startswith("LISTENING "):
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep draining
            return proc, line.split()[1]
    proc.wait()
    sys.exit("memnoded exited (code %s) before printing LISTENING" % proc.returncode)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="PNG file to write")
    ap.add_argument("--server", help="address of a running memnoded (host:port)")
    ap.add_argument("--memnoded", default=os.environ.get("MEMNODED", "memnoded"),
                    help="memnoded binary to start when --server is not given "
                         "(default: $MEMNODED, else memnoded on PATH)")
    ap.add_argument("--same", type=int, default=8, help="pairwise identical pages per process")
    ap.add_argument("--unique", type=int, default=3, help="unique pages per process")
    ap.add_argument("--writes", type=int, default=3, help="merged pages A writes to")
    ap.add_argument("--blocks-per-node", type=int, default=4)
    ap.add_argument("--pages-per-block", type=int, default=64)
    args = ap.parse_args()
    assert args.same >= 2 and 0 <= args.writes < args.same, "need 0 <= writes < same, same >= 2"

    server = None
    if not args.server:
        server, args.server = start_memnoded(args.memnoded)
    try:
        with Client(args.server) as c:
            c.wait_ready(timeout=10)
            with c.create_machine("ksm-offline-%d" % os.getpid(), nodes=2,
                                  blocks_per_node=args.blocks_per_node,
                                  pages_per_block=args.pages_per_block, clock="manual") as m:
                steps = run(m, args)
                print("check:", "ok" if m.check().ok else "FAILED")
    finally:
        if server:
            server.terminate()
            server.wait(timeout=10)
    plot(steps, args)
    print("FINAL " + json.dumps(steps[-1][1], sort_keys=True))
    print("wrote", args.out)


def run(m, args):
    steps = []

    def record(label):
        k = m.ksm.get()
        c = {"shared": k.pages_shared, "sharing": k.pages_sharing,
             "unshared": k.pages_unshared, "volatile": k.pages_volatile,
             "full_scans": k.full_scans}
        steps.append((label, c))
        print("%-10s %s" % (label, " ".join("%s=%d" % kv for kv in c.items())))

    def ksm_pass(label):
        m.ksm.step(full_scans=1)
        record(label)

    n = args.same + args.unique
    a, b = m.create_process(home_node=1), m.create_process(home_node=1)
    base = {}
    for who, p in enumerate((a, b)):
        r = p.mmap(n * PAGE_SIZE, "rw")
        assert r.ok, r.errno_name
        base[p] = r.address
        for i in range(args.same):           # page i: same bytes in A and B
            p.fill(r.address + i * PAGE_SIZE, PAGE_SIZE, byte=0x10 + i)
        for i in range(args.same, n):         # random, different in every page
            p.fill(r.address + i * PAGE_SIZE, PAGE_SIZE, seed=1000 * (who + 1) + i)
        assert p.madvise(r.address, n * PAGE_SIZE, "mergeable").ok
    record("start")
    for i in (1, 2, 3):
        ksm_pass("pass %d" % i)

    for i in range(args.writes):              # COW break: A gets private copies
        assert a.write(base[a] + i * PAGE_SIZE, b"\xff").ok
    record("write")
    ksm_pass("pass 4")
    ksm_pass("pass 5")

    # Offline the block of the KSM page with the lowest kpfn: it migrates.
    blk = m.block(m.page(m.ksm.stable_nodes()[0].kpfn).block)
    rep = blk.offline()
    assert rep.ok, "offline: %s (%s)" % (rep.errno_name, rep.failure)
    print("  offline %s: migrated %d pages, %d KSM" % (blk.name, rep.pages_migrated,
                                                      rep.ksm_pages_migrated))
    record("offline")

    # The race: P = last SAME page, still shared by A and B.
    addr = {p: base[p] + (args.same - 1) * PAGE_SIZE for p in (a, b)}
    kpfn = a.pfn(addr[a])
    blk = m.block(m.page(kpfn).block)
    rep = blk.offline(pause_after="going-offline")
    assert rep.ok and rep.paused, rep.errno_name
    for p in (a, b):
        assert p.madvise(addr[p], PAGE_SIZE, "dontneed").ok
    record("pause+drop")                      # ksmd is locked out: nothing moves
    rep = blk.resume()
    assert rep.ok, "resume: %s (%s)" % (rep.errno_name, rep.failure)
    print("  resume %s: %d stable node(s) pruned by MEM_OFFLINE" % (blk.name,
                                                                   rep.stable_nodes_pruned))
    record("resume")
    ksm_pass("pass 6")
    return steps


def plot(steps, args):
    labels = [s[0] for s in steps]
    x = range(len(steps))
    fig, ax = plt.subplots(figsize=(10, 5))
    styles = {"shared": ("o", "-", 5, 9), "sharing": ("s", "--", 2, 5),   # marker, line,
              "unshared": ("^", "-", 2, 6), "volatile": ("v", "-", 2, 6)}  # width, size
    for name in COUNTERS:                     # shared == sharing after pass 2: thick + dashed
        marker, ls, lw, ms = styles[name]
        ax.plot(x, [s[1][name] for s in steps], marker=marker, linestyle=ls, linewidth=lw,
                markersize=ms, label="pages_" + name)
    for i, label in enumerate(labels):        # shade the non-ksmd events
        if not label.startswith(("pass", "start")):
            ax.axvspan(i - 0.4, i + 0.4, color="0.9", zorder=0)
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels, rotation=30)
    ax.set_xlabel("step (ksmd pass or event; shaded: write / offline / race)")
    ax.set_ylabel("pages")
    ax.set_title("KSM counters: %d identical + %d unique pages x 2 processes, "
                 "%d writes, offline + race" % (args.same, args.unique, args.writes))
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)


if __name__ == "__main__":
    main()
