"""TLS, mutual TLS, bearer tokens with roles, the refusal to serve a remote
address unprotected, and HTTP basic auth on the metrics endpoint, against
real memnoded processes and real TLS handshakes (certificates made here with
the `openssl` command)."""

from __future__ import annotations

import base64
import shutil
import subprocess
import urllib.error
import urllib.request

import grpc
import pytest

from memnoded_proc import Memnoded, all_methods, error_info, invoke, run_to_exit

ADMIN = "admin-token-0123456789abcdef"
READER = "read-token-0123456789abcdef"
METRICS_USER, METRICS_PASSWORD = "prom", "s3cret-metrics-pw"

# The read-only methods, as this test expects them (independently of the
# server's own table): a read token may call these and nothing else.
READ_ONLY = {
    "MachineService/GetMachine", "MachineService/ListMachines", "MachineService/CheckMachine",
    "MachineService/GetPageFrame", "MachineService/ListPageFrames",
    "ProcessService/GetProcess", "ProcessService/ListProcesses", "ProcessService/ReadMemory",
    "ProcessService/DigestMemory", "ProcessService/TranslateAddresses",
    "KsmService/GetKsm", "KsmService/ListStableNodes", "KsmService/ListUnstableItems",
    "KsmService/ListRmapItems", "NumaService/GetMempolicy",
    "MemoryBlockService/ListMemoryBlocks", "MemoryBlockService/GetMemoryBlock",
    "EventService/WatchEvents",
}

def _openssl(*args, cwd):
    assert shutil.which("openssl"), "needs the openssl command (Debian package openssl: scripts/deps.sh test)"
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=memnode test CA", cwd=d)
    for name, ext in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                 "extendedKeyUsage=serverAuth\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        (d / (name + ".ext")).write_text(ext)
        _openssl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr",
                 "-subj", "/CN=memnode test " + name, cwd=d)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", name + ".pem", "-days", "2",
                 "-extfile", name + ".ext", cwd=d)
    # A second CA whose client certificates the server must not accept.
    _openssl("req", "-x509", *ec, "-keyout", "other.key", "-out", "other.pem", "-days", "2",
             "-subj", "/CN=someone else", cwd=d)
    (d / "tokens").write_text("# test tokens\n%s admin\n\n%s read\n" % (ADMIN, READER))
    (d / "metrics_auth").write_text("%s:%s\n" % (METRICS_USER, METRICS_PASSWORD))
    return d


def _read(p):
    return p.read_bytes()


TOPOLOGY = ["--nodes=1", "--blocks_per_node=2", "--pages_per_block=64", "--clock=manual"]


@pytest.fixture(scope="module")
def tls_server(pki):
    s = Memnoded(["--listen=127.0.0.1:0", "--metrics_address=127.0.0.1:0",
                  "--tls_cert=%s" % (pki / "server.pem"), "--tls_key=%s" % (pki / "server.key"),
                  "--token_file=%s" % (pki / "tokens"),
                  "--metrics_basic_auth_file=%s" % (pki / "metrics_auth")] + TOPOLOGY)
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
    s.stop()


def _tls_channel(pki, address, client_cert=None):
    kw = {}
    if client_cert:
        kw = {"private_key": _read(pki / (client_cert + ".key")),
              "certificate_chain": _read(pki / (client_cert + ".pem"))}
    creds = grpc.ssl_channel_credentials(root_certificates=_read(pki / "ca.pem"), **kw)
    return grpc.secure_channel(address, creds)


def _auth(token):
    return (("authorization", "Bearer " + token),)


def _digest(channel):
    from memnode.v1 import machine_pb2
    resp = invoke(channel, "/memnode.v1.MachineService/CheckMachine", _method("CheckMachine"),
                  machine_pb2.CheckMachineRequest(name="machines/default").SerializeToString(),
                  metadata=_auth(ADMIN))
    r = machine_pb2.CheckMachineResponse.FromString(resp)
    assert r.ok, list(r.violations)
    return r.state_digest


def _method(name):
    for path, m, req, _ in all_methods():
        if path.endswith("/" + name):
            return m
    raise KeyError(name)


def _populate(channel):
    """A process with written memory on machines/default (admin token)."""
    from memnode.v1 import process_pb2
    p = process_pb2.Process.FromString(invoke(
        channel, "/memnode.v1.ProcessService/CreateProcess", _method("CreateProcess"),
        process_pb2.CreateProcessRequest(parent="machines/default").SerializeToString(),
        metadata=_auth(ADMIN)))
    mm = process_pb2.MmapResponse.FromString(invoke(
        channel, "/memnode.v1.ProcessService/Mmap", _method("Mmap"),
        process_pb2.MmapRequest(name=p.name, length=4 * 4096, prot=3).SerializeToString(),
        metadata=_auth(ADMIN)))
    r = process_pb2.MemoryAccessResult.FromString(invoke(
        channel, "/memnode.v1.ProcessService/FillMemory", _method("FillMemory"),
        process_pb2.FillMemoryRequest(name=p.name, address=mm.address, length=4 * 4096,
                                      random_seed=3).SerializeToString(),
        metadata=_auth(ADMIN)))
    assert r.errnum == 0 and r.bytes_done == 4 * 4096
    return p.name


def _health(channel, metadata=None):
    # grpc.health.v1.HealthCheckRequest{} is empty; SERVING is field 1 = 1.
    return invoke(channel, "/grpc.health.v1.Health/Check", _method_stub_unary(), b"",
                  metadata=metadata, timeout=10)


def _method_stub_unary():
    class _Unary:
        server_streaming = False
    return _Unary()


def test_good_token_over_tls_works(pki, tls_server):
    with _tls_channel(pki, tls_server.address) as ch:
        name = _populate(ch)
        from memnode.v1 import process_pb2
        got = process_pb2.Process.FromString(invoke(
            ch, "/memnode.v1.ProcessService/GetProcess", _method("GetProcess"),
            process_pb2.GetProcessRequest(name=name).SerializeToString(), metadata=_auth(READER)))
        assert got.name == name and got.anon_pages == 4


def _call_all(channel, metadata):
    """Every memnode.v1 RPC with an empty request: {short name: RpcError or None}."""
    out = {}
    for path, m, req, _ in all_methods():
        short = path.split(".", 2)[2]  # "MachineService/GetMachine"
        try:
            invoke(channel, path, m, req().SerializeToString(), metadata=metadata, timeout=10)
            out[short] = None
        except grpc.RpcError as e:
            out[short] = e
    return out


@pytest.mark.parametrize("metadata", [
    None,
    _auth("no-such-token-0123456789"),
    _auth(""),
    (("authorization", ADMIN),),                 # no "Bearer " scheme
    (("authorization", "Basic " + ADMIN),),
    (("authorization", "Bearer " + ADMIN + "x"),),
    (("authorization", "Bearer " + ADMIN[:-1]),),
], ids=["none", "unknown", "empty", "no-scheme", "basic", "longer", "prefix"])
def test_every_rpc_without_a_valid_token_is_unauthenticated(pki, tls_server, metadata):
    with _tls_channel(pki, tls_server.address) as ch:
        _populate(ch)
        before = _digest(ch)
        results = _call_all(ch, metadata)
        assert len(results) >= 51
        for name, err in results.items():
            assert err is not None, "%s succeeded without a valid token" % name
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED, (name, err)
            info = error_info(err)
            assert info is not None and info[0] == "UNAUTHENTICATED", (name, info)
            assert info[1] == "memnode.dev"
        assert _digest(ch) == before


def test_read_token_cannot_change_anything(pki, tls_server):
    with _tls_channel(pki, tls_server.address) as ch:
        name = _populate(ch)
        before = _digest(ch)
        results = _call_all(ch, _auth(READER))
        for short, err in results.items():
            if short in READ_ONLY:
                # Allowed through (the empty request then fails on its own).
                assert err is None or err.code() not in (grpc.StatusCode.PERMISSION_DENIED,
                                                         grpc.StatusCode.UNAUTHENTICATED), short
            else:
                assert err is not None, "%s succeeded with a read token" % short
                assert err.code() == grpc.StatusCode.PERMISSION_DENIED, (short, err)
                assert error_info(err)[0] == "PERMISSION_DENIED", short
        # A well-formed mutating request with a read token changes nothing.
        from memnode.v1 import process_pb2
        with pytest.raises(grpc.RpcError) as info:
            invoke(ch, "/memnode.v1.ProcessService/ExitProcess", _method("ExitProcess"),
                   process_pb2.ExitProcessRequest(name=name).SerializeToString(),
                   metadata=_auth(READER))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert _digest(ch) == before
        # The same request with the admin token works (and changes the state).
        invoke(ch, "/memnode.v1.ProcessService/ExitProcess", _method("ExitProcess"),
               process_pb2.ExitProcessRequest(name=name).SerializeToString(),
               metadata=_auth(ADMIN))
        assert _digest(ch) != before


def test_health_needs_no_token(pki, tls_server):
    with _tls_channel(pki, tls_server.address) as ch:
        assert _health(ch) == b"\x08\x01"  # SERVING


def test_insecure_client_cannot_talk_to_the_tls_port(tls_server):
    with grpc.insecure_channel(tls_server.address) as ch:
        with pytest.raises(grpc.RpcError) as info:
            _health(ch)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_requires_a_client_certificate(pki, mtls_server):
    with _tls_channel(pki, mtls_server.address) as ch:
        with pytest.raises(grpc.RpcError) as info:
            _health(ch)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    # A certificate signed by the wrong CA: refused too.
    kw = {"private_key": _read(pki / "other.key"), "certificate_chain": _read(pki / "other.pem")}
    creds = grpc.ssl_channel_credentials(root_certificates=_read(pki / "ca.pem"), **kw)
    with grpc.secure_channel(mtls_server.address, creds) as ch:
        with pytest.raises(grpc.RpcError) as info:
            _health(ch)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    with _tls_channel(pki, mtls_server.address, client_cert="client") as ch:
        assert _health(ch) == b"\x08\x01"
        assert _digest(ch)  # and the token still applies on top
        with pytest.raises(grpc.RpcError) as info:
            invoke(ch, "/memnode.v1.MachineService/ListMachines", _method("ListMachines"), b"")
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def _get(url, auth=None):
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization",
                       "Basic " + base64.b64encode(("%s:%s" % auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def test_metrics_basic_auth(tls_server):
    url = "http://%s/metrics" % tls_server.metrics_address
    assert _get(url)[0] == 401
    assert _get(url, (METRICS_USER, "wrong"))[0] == 401
    assert _get(url, ("someone", METRICS_PASSWORD))[0] == 401
    status, body = _get(url, (METRICS_USER, METRICS_PASSWORD))
    assert status == 200 and "memnode_rpc_requests_total" in body


def test_refuses_to_serve_a_remote_address_unprotected(pki):
    rc, err = run_to_exit(["--listen=0.0.0.0:0", "--metrics_address="])
    assert rc == 2 and "--allow_insecure_remote" in err, err
    # Each protection alone, or the explicit opt-out, lets it start.
    for extra in (["--allow_insecure_remote"], ["--token_file=%s" % (pki / "tokens")],
                  ["--tls_cert=%s" % (pki / "server.pem"), "--tls_key=%s" % (pki / "server.key")]):
        s = Memnoded(["--listen=0.0.0.0:0", "--metrics_address=", "--default_machine=false"] + extra)
        assert s.stop() == 0


@pytest.mark.parametrize("flags,needle", [
    (["--tls_cert=/nonexistent.pem"], "--tls_key"),
    (["--tls_cert=/nonexistent.pem", "--tls_key=/nonexistent.key"], "cannot read"),
    (["--tls_client_ca=/nonexistent.pem"], "--tls_client_ca"),
    (["--token_file=/nonexistent"], "token"),
    (["--metrics_basic_auth_file=/nonexistent"], "metrics_basic_auth_file"),
])
def test_bad_security_flags_refuse_to_start(flags, needle):
    rc, err = run_to_exit(["--listen=127.0.0.1:0", "--metrics_address="] + flags)
    assert rc == 2 and needle in err, err


def test_bad_token_files_refuse_to_start(tmp_path):
    for body in ("", "# only a comment\n", "short admin\n", ADMIN + " root\n",
                 ADMIN + " admin extra\n"):
        f = tmp_path / "tokens"
        f.write_text(body)
        rc, err = run_to_exit(["--listen=127.0.0.1:0", "--metrics_address=",
                               "--token_file=%s" % f])
        assert rc == 2 and "token" in err, (body, err)
