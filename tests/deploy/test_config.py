"""memnoded's config file (the one file every deployment hands it): each
line goes through the flag's own Abseil parser, an unknown key or a bad
value stops memnoded at start with exit 2 naming the file and line, ranges
the flag types cannot express are checked at start for flags and file
alike, and the command line wins over the file."""

from __future__ import annotations

import re
import subprocess

import pytest

from deploy_common import memnoded_binary
from deployed import require_namespaces


def contained(argv: list[str]) -> list[str]:
    """argv in a network namespace of its own with only loopback (a config
    that binds 0.0.0.0 binds nothing of the host's)."""
    require_namespaces()
    return ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]


def start(tmp_path, text: str, *flags: str, timeout: float = 20):
    """memnoded with a config file; (exit code, stderr) if it stops by
    itself, else (None, first stdout line) after stopping it."""
    conf = tmp_path / "memnoded.conf"
    conf.write_text(text)
    proc = subprocess.Popen(contained([str(memnoded_binary()), f"--config={conf}", *flags]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, err
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"memnoded kept running with {text!r}:\n{out}{err}")


# Each of these must stop memnoded at start (exit 2) with this message.
BAD = [
    ("nodes=4294967298\n", r"memnoded\.conf:1: bad value for nodes: Illegal value '4294967298'"),
    ("nodes=-1\n", r"bad value for nodes"),
    ("default_machine=maybe\n", r"bad value for default_machine"),
    ("# comment\n\nlisten=127.0.0.1:0\nno_such_flag=1\n", r"memnoded\.conf:4: unknown key \"no_such_flag\""),
    ("flagfile=/etc/passwd\n", r"unknown key \"flagfile\""),
    ("config=/etc/memnode/other.conf\n", r"unknown key \"config\" \(a config file cannot name another\)"),
    ("listen 127.0.0.1:0\n", r"memnoded\.conf:1: expected key=value"),
    # Ranges the types cannot express.
    ("nodes=65\n", r"nodes must be 1\.\.64"),
    ("nodes=0\n", r"nodes must be 1\.\.64"),
    ("pages_per_block=100\n", r"pages_per_block must be a multiple of 64"),
    ("clock=sometimes\n", r"--clock must be realtime or manual"),
    ("max_request_bytes=2147483648\n", r"--max_request_bytes=2147483648 is out of range 1\.\.1073741824"),
    ("event_buffer=0\n", r"--event_buffer=0 is out of range"),
    ("max_threads=2\n", r"--max_threads=2 is out of range 4\.\."),
]


@pytest.mark.parametrize("text,message", BAD, ids=[b[0].strip().replace("\n", "|") for b in BAD])
def test_bad_config_stops_memnoded(tmp_path, text, message):
    code, err = start(tmp_path, text)
    assert code == 2, err
    assert re.search(message, err), err


def test_booleans_follow_the_flag_definition(tmp_path):
    """allow_insecure_remote=yes means true (Abseil's boolean syntax): a
    remote address without TLS or tokens is then allowed. With `no` memnoded
    refuses it."""
    ok = start_serving(tmp_path, "listen=0.0.0.0:0\nallow_insecure_remote=yes\nmetrics_address=\n")
    assert ok.startswith("LISTENING 0.0.0.0:")
    code, err = start(tmp_path, "listen=0.0.0.0:0\nallow_insecure_remote=no\nmetrics_address=\n")
    assert code == 2 and "refusing to listen on 0.0.0.0:0" in err, err


def test_flag_ranges_are_checked_on_the_command_line_too(tmp_path):
    code, err = start(tmp_path, "", "--nodes=65")
    assert code == 2 and "nodes must be 1..64" in err, err


def test_command_line_wins_over_the_file(tmp_path):
    """A bad value in the file is still an error, but a flag on the command
    line replaces a valid file value."""
    line = start_serving(tmp_path, "listen=0.0.0.0:0\nmetrics_address=\n", "--listen=127.0.0.1:0")
    assert line.startswith("LISTENING 127.0.0.1:")
    line = start_serving(tmp_path, "listen=127.0.0.1:0\nmetrics_address=\n", "--config",
                         str(tmp_path / "memnoded.conf"))
    assert line.startswith("LISTENING 127.0.0.1:")


def start_serving(tmp_path, text: str, *flags: str) -> str:
    """memnoded with a config that must serve: its LISTENING line, after a
    clean SIGTERM stop."""
    conf = tmp_path / "memnoded.conf"
    conf.write_text(text)
    proc = subprocess.Popen(contained([str(memnoded_binary()), f"--config={conf}", *flags,
                                       "--pages_per_block=64"]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("LISTENING"), (line, proc.stderr.read() if proc.poll() is not None else "")
        return line
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
