"""memnodectl against real memnoded processes started the secured way
(docs/SECURITY.md: TLS, mutual TLS, bearer tokens with roles; certificates
made here with the `openssl` command, as test_security.py does), and its
snapshot commands against a server with a state directory.

The CLI is the build's memnodectl, run as a user runs it."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time

import pytest

from conftest import BUILD_DIR
from memnoded_proc import Memnoded

MEMNODECTL = BUILD_DIR / "client" / "cpp" / "memnodectl"
ADMIN = "cli-admin-token-0123456789abcdef"
READER = "cli-read-token-0123456789abcdef"
TOPOLOGY = ["--nodes=1", "--blocks_per_node=2", "--pages_per_block=64", "--clock=manual"]


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    assert shutil.which("openssl"), "needs the openssl command (scripts/deps.sh installs it)"
    assert MEMNODECTL.is_file(), "%s is not built (cmake --build ... --target memnodectl)" % (
        MEMNODECTL)
    d = tmp_path_factory.mktemp("cli-pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=memnodectl test CA", cwd=d)
    for name, ext in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                 "extendedKeyUsage=serverAuth\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        (d / (name + ".ext")).write_text(ext)
        _openssl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr",
                 "-subj", "/CN=memnodectl test " + name, cwd=d)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", name + ".pem", "-days", "2",
                 "-extfile", name + ".ext", cwd=d)
    # A CA (and its self-signed certificate) the servers do not trust.
    _openssl("req", "-x509", *ec, "-keyout", "other.key", "-out", "other.pem", "-days", "2",
             "-subj", "/CN=someone else", cwd=d)
    (d / "tokens").write_text("# memnodectl test tokens\n%s admin\n%s read\n" % (ADMIN, READER))
    (d / "admin.token").write_text(ADMIN + "\n")
    (d / "read.token").write_text(READER)
    (d / "two.token").write_text("%s %s\n" % (ADMIN, READER))
    return d


@pytest.fixture(scope="module")
def tls_server(pki):
    s = Memnoded(["--listen=127.0.0.1:0", "--metrics_address=",
                  "--tls_cert=%s" % (pki / "server.pem"), "--tls_key=%s" % (pki / "server.key"),
                  "--token_file=%s" % (pki / "tokens")] + TOPOLOGY)
    yield s
    assert s.alive(), s.stderr()
    s.stop()


@pytest.fixture(scope="module")
def mtls_server(pki):
    s = Memnoded(["--listen=127.0.0.1:0", "--metrics_address=",
                  "--tls_cert=%s" % (pki / "server.pem"), "--tls_key=%s" % (pki / "server.key"),
                  "--tls_client_ca=%s" % (pki / "ca.pem"),
                  "--token_file=%s" % (pki / "tokens")] + TOPOLOGY)
    yield s
    assert s.alive(), s.stderr()
    s.stop()


def _env(token=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMNODE")}
    if token is not None:
        env["MEMNODE_TOKEN"] = token
    return env


def ctl(server, *args, token=None, timeout=60):
    """Runs memnodectl against `server`: (exit code, stdout, stderr)."""
    p = subprocess.run([str(MEMNODECTL), "--server=%s" % server.address, "--timeout=20", *args],
                       capture_output=True, text=True, timeout=timeout, env=_env(token),
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def _tls(pki, *more):
    return ["--tls-ca=%s" % (pki / "ca.pem"), *more]


def test_tls_and_token_file(tls_server, pki):
    rc, out, err = ctl(tls_server, *_tls(pki), "--token-file", str(pki / "admin.token"),
                       "machine", "get")
    assert rc == 0, err
    assert "name:              machines/default" in out
    # A mutating call with the admin token, from $MEMNODE_TOKEN.
    rc, out, err = ctl(tls_server, *_tls(pki), "process", "create", token=ADMIN)
    assert rc == 0, err
    assert "pid:" in out
    # --token-file wins over $MEMNODE_TOKEN.
    rc, out, err = ctl(tls_server, *_tls(pki), "--token-file=%s" % (pki / "admin.token"),
                       "--json", "process", "list", token="wrong-token-0123456789abcdef")
    assert rc == 0, err
    assert '"pid":1' in out


def test_missing_or_unknown_token_is_unauthenticated(tls_server, pki):
    for token in (None, "wrong-token-0123456789abcdef"):
        rc, out, err = ctl(tls_server, *_tls(pki), "ksm", "get", token=token)
        assert rc == 3, (token, out, err)
        assert err.startswith("error: UNAUTHENTICATED: "), err
        assert "[reason=UNAUTHENTICATED]" in err


def test_read_token_reads_but_does_not_change(tls_server, pki):
    rc, out, err = ctl(tls_server, *_tls(pki), "--token-file", str(pki / "read.token"),
                       "ksm", "get")
    assert rc == 0, err
    assert "pages_shared:" in out
    rc, out, err = ctl(tls_server, *_tls(pki), "--token-file", str(pki / "read.token"),
                       "process", "create")
    assert rc == 3, (out, err)
    assert "error: PERMISSION_DENIED: " in err and "[reason=PERMISSION_DENIED]" in err


def test_streams_carry_the_token(tls_server, pki):
    # top opens WatchEvents next to its unary calls: with a read token the
    # stream is admitted, so the view reports no ended stream.
    rc, out, err = ctl(tls_server, *_tls(pki), "top", "--iterations", "1", token=READER)
    assert rc == 0, err
    assert "memnodectl top: machines/default  iteration 1/1" in out
    assert "event stream ended" not in out
    # watch: the event of a process exit made by another call.
    watch = subprocess.Popen([str(MEMNODECTL), "--server=%s" % tls_server.address, *_tls(pki),
                              "watch", "--kinds", "process-exit", "--count", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=_env(READER), stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        line = ""
        while "watching machines/default" not in line and time.monotonic() < deadline:
            ready, _, _ = select.select([watch.stderr], [], [], 1)
            if ready:
                line = watch.stderr.readline()
                if not line:
                    break
        assert "watching machines/default" in line, line
        rc, out, err = ctl(tls_server, *_tls(pki), "process", "create", token=ADMIN)
        assert rc == 0, err
        pid = next(l.split()[1] for l in out.splitlines() if l.startswith("pid:"))
        rc, out, err = ctl(tls_server, *_tls(pki), "process", "exit", pid, token=ADMIN)
        assert rc == 0, err
        out, err = watch.communicate(timeout=30)
        assert watch.returncode == 0, err
        fields = out.split()
        assert fields[2:] == ["process-exit", "pid=%s" % pid], out
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()


def test_tls_server_refuses_plaintext_and_unknown_ca(tls_server, pki):
    # The handshake fails: the server is unreachable for this client (4).
    rc, out, err = ctl(tls_server, "ksm", "get", token=ADMIN)
    assert rc == 4, (out, err)
    assert err.startswith("error: UNAVAILABLE: "), err
    rc, out, err = ctl(tls_server, "--tls-ca=%s" % (pki / "other.pem"), "ksm", "get",
                       token=ADMIN)
    assert rc == 4, (out, err)


def test_mutual_tls(mtls_server, pki):
    client = ["--tls-cert=%s" % (pki / "client.pem"), "--tls-key=%s" % (pki / "client.key")]
    rc, out, err = ctl(mtls_server, *_tls(pki, *client), "machine", "get", token=ADMIN)
    assert rc == 0, err
    assert "machines/default" in out
    # Without a client certificate, or with one the server's CA did not sign.
    rc, out, err = ctl(mtls_server, *_tls(pki), "machine", "get", token=ADMIN)
    assert rc == 4, (out, err)
    other = ["--tls-cert=%s" % (pki / "other.pem"), "--tls-key=%s" % (pki / "other.key")]
    rc, out, err = ctl(mtls_server, *_tls(pki, *other), "machine", "get", token=ADMIN)
    assert rc == 4, (out, err)


@pytest.mark.parametrize("args, message", [
    (["--tls-cert=CERT"], "--tls-cert and --tls-key go together"),
    (["--tls-ca=/nonexistent/ca.pem"], "--tls-ca: cannot read"),
    (["--token-file=/nonexistent/token"], "--token-file: cannot read"),
    (["--token-file=TWO"], "must hold one token"),
])
def test_bad_security_flags_are_usage_errors(tls_server, pki, args, message):
    args = [a.replace("CERT", str(pki / "client.pem")).replace("TWO", str(pki / "two.token"))
            for a in args]
    rc, out, err = ctl(tls_server, *args, "ksm", "get")
    assert rc == 2, (out, err)
    assert message in err
    assert "usage: memnodectl ksm get" in err


def test_bad_token_in_environment_is_a_usage_error(tls_server, pki):
    rc, out, err = ctl(tls_server, *_tls(pki), "ksm", "get", token="two words")
    assert rc == 2, (out, err)
    assert "$MEMNODE_TOKEN must be one token" in err


def test_snapshot_save_and_load(tmp_path):
    assert MEMNODECTL.is_file(), "%s is not built" % MEMNODECTL
    state = tmp_path / "state"
    state.mkdir()
    s = Memnoded(["--listen=127.0.0.1:0", "--metrics_address=", "--state_dir=%s" % state]
                 + TOPOLOGY)
    try:
        rc, out, err = ctl(s, "process", "create")
        assert rc == 0, err
        rc, out, err = ctl(s, "mmap", "1", "16K")
        assert rc == 0, err
        rc, out, err = ctl(s, "fill", "1", out.strip(), "16K", "--random", "5")
        assert rc == 0, err
        rc, out, err = ctl(s, "machine", "check")
        assert rc == 0, err
        digest = next(l.split()[1] for l in out.splitlines() if l.startswith("state_digest:"))
        rc, out, err = ctl(s, "snapshot", "save", "--file", "cli.mnsnap")
        assert rc == 0, err
        assert "state_digest: %s" % digest in out
        assert (state / "cli.mnsnap").is_file()
        rc, out, err = ctl(s, "--json", "snapshot", "load", "cli.mnsnap", "copy")
        assert rc == 0, err
        assert '"name":"machines/copy"' in out
        rc, out, err = ctl(s, "--machine=copy", "machine", "check")
        assert rc == 0, err
        assert "state_digest: %s" % digest in out
        rc, out, err = ctl(s, "snapshot", "load", "cli.mnsnap", "copy")
        assert rc == 3 and "ALREADY_EXISTS" in err, (out, err)
    finally:
        s.stop()
