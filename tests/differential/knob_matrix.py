"""The knob errno matrix: inputs for every writable /sys/kernel/mm/ksm file
and, for each, what Linux 6.18 answers, derived from the parsers each store
function uses (docs/SEMANTICS.md, docs/DIFFERENTIAL.md):

  run, pages_to_scan, sleep_millisecs, stable_node_chains_prune_millisecs:
      kstrtouint; any parser error -> EINVAL. run > 2 -> EINVAL.
      pages_to_scan -> EINVAL while advisor_mode is scan-time.
  merge_across_nodes: kstrtoul; the parser's own error is returned (ERANGE
      for a value beyond 2^64-1); > 1 -> EINVAL.
  max_page_sharing: kstrtoint; the parser's error is returned (ERANGE beyond
      the int range); < 2 -> EINVAL; EBUSY while KSM pages exist (the
      scenario max_page_sharing_knob_rules covers that).
  use_zero_pages, smart_scan: kstrtobool (first character y/Y/t/T/1 or
      n/N/f/F/0, or "on"/"off" by their first two characters) -> EINVAL
      otherwise.
  advisor_mode: exactly "none" or "scan-time", one trailing newline allowed.
  advisor_max_cpu, advisor_min_pages_to_scan, advisor_max_pages_to_scan:
      kstrtoul; error -> EINVAL; no range check.
  advisor_target_scan_time: kstrtoul; error or 0 -> EINVAL.

The kstrto* family (lib/kstrtox.c): base 10 here, an optional leading '+'
(unsigned and signed) or '-' (signed only), at least one digit, then at most
one '\\n' and nothing else; leading blanks are not skipped. A value beyond
the 64-bit range is ERANGE, and kstrtouint / kstrtoint also return ERANGE
for values outside 32 bits.

sysfs itself: an empty write never reaches the store function and
"succeeds" with 0 bytes written.
"""

from __future__ import annotations

import errno
from typing import Dict, List, Optional, Tuple

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
I32_MAX = 2**31 - 1
I32_MIN = -2**31

# Inputs tried on every writable file (bytes written exactly as given).
COMMON_INPUTS = (
    "0", "1", "2", "3", "5\n", "+5", "-1", "-0", " 5", "5 ", "\t5", "5\n\n", "05",
    "0x10", "1e3", "abc", "", "\n",
    "2147483647", "2147483648", "-2147483648", "-2147483649",
    "4294967295", "4294967296", "18446744073709551615", "18446744073709551616",
    "99999999999999999999",
    "y", "Y", "n", "t", "f", "on", "off", "On", "oN", "o", "yes", "no", "10",
    "none", "scan-time", "none\n", "scan-time\n", "[none]", "NONE", "none ", "scan-time\n\n",
)


def _kstrtoull(s: str) -> Tuple[int, int]:
    """(errno or 0, value) for kstrtoull(s, 10) including the '+' prefix."""
    if s.startswith("+"):
        s = s[1:]
    return _parse_unsigned(s)


def _parse_unsigned(s: str) -> Tuple[int, int]:
    i, v = 0, 0
    while i < len(s) and s[i].isdigit() and s[i].isascii():
        v = v * 10 + int(s[i])
        i += 1
    if i == 0:
        return errno.EINVAL, 0
    if v > U64_MAX:
        return errno.ERANGE, 0
    rest = s[i:]
    if rest.startswith("\n"):
        rest = rest[1:]
    if rest:
        return errno.EINVAL, 0
    return 0, v


def kstrtoul(s: str) -> Tuple[int, int]:
    return _kstrtoull(s)


def kstrtouint(s: str) -> Tuple[int, int]:
    e, v = _kstrtoull(s)
    if e:
        return e, 0
    if v > U32_MAX:
        return errno.ERANGE, 0
    return 0, v


def kstrtoll(s: str) -> Tuple[int, int]:
    if s.startswith("-"):
        e, v = _parse_unsigned(s[1:])
        if e:
            return e, 0
        if v > 2**63:
            return errno.ERANGE, 0
        return 0, -v
    e, v = _kstrtoull(s)
    if e:
        return e, 0
    if v > 2**63 - 1:
        return errno.ERANGE, 0
    return 0, v


def kstrtoint(s: str) -> Tuple[int, int]:
    e, v = kstrtoll(s)
    if e:
        return e, 0
    if not I32_MIN <= v <= I32_MAX:
        return errno.ERANGE, 0
    return 0, v


def kstrtobool(s: str) -> Tuple[int, Optional[bool]]:
    if not s:
        return errno.EINVAL, None
    c = s[0]
    if c in "yYtT1":
        return 0, True
    if c in "nNfF0":
        return 0, False
    if c in "oO" and len(s) > 1:
        if s[1] in "nN":
            return 0, True
        if s[1] in "fF":
            return 0, False
    return errno.EINVAL, None


def sysfs_streq(s1: str, s2: str) -> bool:
    """lib/string.c: equal, or equal but for one trailing newline on one side."""
    i = 0
    while i < len(s1) and i < len(s2) and s1[i] == s2[i]:
        i += 1
    r1, r2 = s1[i:], s2[i:]
    return r1 == r2 or (r1 == "" and r2 == "\n") or (r1 == "\n" and r2 == "")


def expected(file: str, text: str, current: Dict[str, str]) -> Tuple[int, str]:
    """(errno, text read back afterwards) for writing ``text`` to ``file``
    when the knobs read ``current`` (file -> text as read, with newline)."""
    if text == "":
        return 0, current[file]
    advisor = "scan-time" if current.get("advisor_mode", "").startswith("none [") else "none"

    def u32(v: int) -> str:
        return "%d\n" % v

    if file in ("run", "pages_to_scan", "sleep_millisecs", "stable_node_chains_prune_millisecs"):
        if file == "pages_to_scan" and advisor != "none":
            return errno.EINVAL, current[file]
        e, v = kstrtouint(text)
        if e:
            return errno.EINVAL, current[file]
        if file == "run" and v > 2:
            return errno.EINVAL, current[file]
        return 0, u32(v)
    if file == "merge_across_nodes":
        e, v = kstrtoul(text)
        if e:
            return e, current[file]
        if v > 1:
            return errno.EINVAL, current[file]
        return 0, u32(v)          # no KSM pages exist while the matrix runs
    if file == "max_page_sharing":
        e, v = kstrtoint(text)
        if e:
            return e, current[file]
        if v < 2:
            return errno.EINVAL, current[file]
        return 0, u32(v)
    if file in ("use_zero_pages", "smart_scan"):
        e, b = kstrtobool(text)
        if e:
            return errno.EINVAL, current[file]
        return 0, "1\n" if b else "0\n"
    if file == "advisor_mode":
        if sysfs_streq(text, "scan-time"):
            return 0, "none [scan-time]\n"
        if sysfs_streq(text, "none"):
            return 0, "[none] scan-time\n"
        return errno.EINVAL, current[file]
    if file in ("advisor_max_cpu",):
        e, v = kstrtoul(text)
        if e:
            return errno.EINVAL, current[file]
        return 0, "%d\n" % (v & 0xFFFFFFFF)      # stored in an unsigned int
    if file in ("advisor_min_pages_to_scan", "advisor_max_pages_to_scan"):
        e, v = kstrtoul(text)
        if e:
            return errno.EINVAL, current[file]
        return 0, "%d\n" % v
    if file == "advisor_target_scan_time":
        e, v = kstrtoul(text)
        if e or v < 1:
            return errno.EINVAL, current[file]
        return 0, "%d\n" % v
    raise KeyError("no parser model for %s" % file)


# Side effects that the matrix also checks: rows (setup writes, file, input).
SIDE_EFFECT_ROWS: List[Tuple[Tuple[Tuple[str, str], ...], str, str]] = [
    # pages_to_scan is refused while the advisor is on.
    ((("advisor_mode", "scan-time"),), "pages_to_scan", "100"),
    # switching the advisor on sets pages_to_scan to advisor_min_pages_to_scan
    ((("advisor_min_pages_to_scan", "777"), ("advisor_mode", "scan-time")), "pages_to_scan",
     ""),
    # switching it off again sets pages_to_scan to 100
    ((("pages_to_scan", "1234"), ("advisor_mode", "scan-time"), ("advisor_mode", "none")),
     "pages_to_scan", ""),
    # writing the mode it already has changes nothing
    ((("pages_to_scan", "1234"), ("advisor_mode", "none")), "pages_to_scan", ""),
]


def side_effect_expected(setup: Tuple[Tuple[str, str], ...], file: str, text: str,
                         current: Dict[str, str]) -> Tuple[int, str]:
    cur = dict(current)
    for f, t in setup:
        e, back = expected(f, t, cur)
        if e == 0:
            before = cur.get("advisor_mode")
            cur[f] = back
            if f == "advisor_mode" and back != before:
                # set_advisor_defaults(): none -> 100, scan-time -> min pages
                if back.startswith("none ["):
                    cur["pages_to_scan"] = cur["advisor_min_pages_to_scan"]
                else:
                    cur["pages_to_scan"] = "100\n"
    return expected(file, text, cur)
