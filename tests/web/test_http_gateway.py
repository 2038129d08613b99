"""memnoded's HTTP port (the Connect gateway, server/http) against its gRPC
port, with Python's standard library as the HTTP client:

* parity: every RPC of every memnode.v1 service (enumerated from the
  generated descriptors) called on both ports with the same invalid requests
  answers with the same code and the same google.rpc.ErrorInfo reason, and a
  valid call gives the same message; WatchEvents too (as a Connect stream);
* the HTTP status of each Connect code (protocol's code table);
* security: bearer tokens (read/admin roles) and TLS with the gRPC port's
  certificate, mutual TLS, the Host check of a loopback server without
  tokens, refusal to serve a remote address unprotected;
* limits: the gRPC handlers' REQUEST_TOO_LARGE, the HTTP body limit;
* protocol errors (415, 405, unknown method, bad JSON, unknown field, bad
  Connect-Timeout-Ms, compression), the binary codec, the static web view;
* the config file key and a graceful shutdown with a stream open.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import select
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import urllib.parse

import grpc
import pytest
from google.protobuf import json_format, symbol_database

from conftest import BUILD_DIR

MEMNODED = os.environ.get("MEMNODED", str(BUILD_DIR / "server" / "memnoded"))
ADMIN = "admin-token-0123456789abcdef"
READER = "read-token-0123456789abcdef"
MAX_REQUEST_BYTES = 1 << 16

# The Connect protocol's code table (connectrpc.com/docs/protocol, "Error Codes").
HTTP_STATUS = {
    "canceled": 499, "unknown": 500, "invalid_argument": 400, "deadline_exceeded": 504,
    "not_found": 404, "already_exists": 409, "permission_denied": 403,
    "resource_exhausted": 429, "failed_precondition": 400, "aborted": 409,
    "out_of_range": 400, "unimplemented": 501, "internal": 500, "unavailable": 503,
    "data_loss": 500, "unauthenticated": 401,
}


def grpc_code_name(connect_code):
    return "CANCELLED" if connect_code == "canceled" else connect_code.upper()


class Memnoded:
    """memnoded with an HTTP port; reads `HTTP url` and `LISTENING addr`."""

    def __init__(self, flags, timeout=30.0):
        self.log = tempfile.NamedTemporaryFile(prefix="memnoded-web-", suffix=".log",
                                               delete=False)
        self.proc = subprocess.Popen([MEMNODED] + list(flags), stdout=subprocess.PIPE,
                                     stderr=self.log, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.http_url = self.address = None
        deadline = time.monotonic() + timeout
        buf = b""
        fd = self.proc.stdout.fileno()
        while self.address is None and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                if self.proc.poll() is not None:
                    break
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                m = re.match(rb"^HTTP (https?://\S+/)\s*$", line)
                if m:
                    self.http_url = m.group(1).decode()
                m = re.match(rb"^LISTENING (\S+:\d+)\s*$", line)
                if m:
                    self.address = m.group(1).decode()
        if self.address is None or self.http_url is None:
            err = self.stderr()
            self.stop()
            raise RuntimeError("memnoded did not start: rc=%s\n%s" % (self.proc.returncode, err))
        u = urllib.parse.urlparse(self.http_url)
        self.host, self.port, self.https = u.hostname, u.port, u.scheme == "https"

    def stderr(self):
        with open(self.log.name, "rb") as f:
            return f.read()[-4000:].decode(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc.stdout.close()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass
        return self.proc.returncode

    def connection(self, context=None, timeout=30):
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, context=context,
                                               timeout=timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, path, body=b"", headers=None, method="POST", context=None):
        """(status, {lower-case header: value}, body bytes)."""
        c = self.connection(context)
        try:
            if isinstance(body, str):
                body = body.encode()
            c.request(method, path, body=body if method not in ("GET", "HEAD") else None,
                      headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def rpc(self, method, payload, token=None, context=None, extra=None):
        """A unary Connect call with a JSON body: (status, headers, parsed JSON)."""
        h = {"Content-Type": "application/json"}
        if token:
            h["Authorization"] = "Bearer " + token
        h.update(extra or {})
        body = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
        st, hd, b = self.request("/memnode.v1." + method, body, h, context=context)
        return st, hd, json.loads(b) if b else None

    def stream(self, method, payload, token=None):
        """A Connect server-stream call: ([messages], end-stream JSON)."""
        data = json.dumps(payload).encode()
        h = {"Content-Type": "application/connect+json"}
        if token:
            h["Authorization"] = "Bearer " + token
        st, hd, b = self.request("/memnode.v1." + method, struct.pack(">BI", 0, len(data)) + data,
                                 h)
        assert st == 200 and hd["content-type"] == "application/connect+json", (st, hd, b)
        return parse_envelopes(b)


def parse_envelopes(b):
    msgs, end = [], None
    while b:
        flags, n = struct.unpack(">BI", b[:5])
        payload, b = b[5:5 + n], b[5 + n:]
        if flags & 2:
            assert not b, "nothing may follow the end-stream message"
            end = json.loads(payload)
        else:
            msgs.append(json.loads(payload))
    assert end is not None, "a stream ends with an end-stream message"
    return msgs, end


def connect_error_info(err):
    """(code, reason, metadata) of a Connect error object; the ErrorInfo is
    decoded from `value` (base64 of the binary message), not from `debug`."""
    from google.rpc import error_details_pb2
    infos = [d for d in err.get("details", []) if d["type"] == "google.rpc.ErrorInfo"]
    if not infos:
        return err["code"], None, None
    assert len(infos) == 1
    v = infos[0]["value"]
    info = error_details_pb2.ErrorInfo.FromString(base64.b64decode(v + "=" * (-len(v) % 4)))
    assert info.domain == "memnode.dev"
    assert infos[0]["debug"]["reason"] == info.reason
    return err["code"], info.reason, dict(info.metadata)


def grpc_error_info(err):
    from google.rpc import error_details_pb2, status_pb2
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for d in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if d.Unpack(info):
                    return info.reason, dict(info.metadata)
    return None, None


def all_methods():
    from memnode.v1 import (events_pb2, hotplug_pb2, ksm_pb2, machine_pb2, numa_pb2,
                            process_pb2)
    db = symbol_database.Default()
    out = []
    for mod in (machine_pb2, process_pb2, ksm_pb2, numa_pb2, hotplug_pb2, events_pb2):
        for svc in mod.DESCRIPTOR.services_by_name.values():
            for m in svc.methods:
                out.append(("%s/%s" % (svc.full_name[len("memnode.v1."):], m.name), m,
                            db.GetSymbol(m.input_type.full_name),
                            db.GetSymbol(m.output_type.full_name)))
    return out


METHODS = all_methods()


def grpc_call(channel, short, method, request, metadata=None):
    ident = lambda b: b  # noqa: E731
    path = "/memnode.v1." + short
    if method.server_streaming:
        call = channel.unary_stream(path, request_serializer=ident, response_deserializer=ident)
        return list(call(request.SerializeToString(), metadata=metadata, timeout=30))
    call = channel.unary_unary(path, request_serializer=ident, response_deserializer=ident)
    return call(request.SerializeToString(), metadata=metadata, timeout=30)


@pytest.fixture(scope="module")
def server():
    s = Memnoded(["--listen=127.0.0.1:0", "--metrics_address=", "--http_address=127.0.0.1:0",
                  "--nodes=2", "--blocks_per_node=2", "--pages_per_block=64", "--clock=manual",
                  "--max_request_bytes=%d" % MAX_REQUEST_BYTES, "--max_ksm_visits=1000"])
    yield s
    alive, err = s.alive(), s.stderr()
    s.stop()
    assert alive, "memnoded died during the tests\n" + err


@pytest.fixture(scope="module")
def channel(server):
    ch = grpc.insecure_channel(server.address)
    yield ch
    ch.close()


def digest(server):
    st, _, r = server.rpc("MachineService/CheckMachine", {"name": "machines/default"})
    assert st == 200 and r["ok"], r
    return r["stateDigest"]


def _variants(req_cls):
    """Invalid requests of a type: empty; every string field naming a machine
    that does not exist; every string field malformed."""
    strings = [f.name for f in req_cls.DESCRIPTOR.fields
               if f.type == f.TYPE_STRING and f.label != f.LABEL_REPEATED]
    yield "empty", req_cls()
    if strings:
        yield "ghost", req_cls(**{f: "machines/ghost" for f in strings})
        yield "malformed", req_cls(**{f: "machines/Bad_Name/x" for f in strings})


CASES = [(short, label, m, req, resp) for short, m, req, resp in METHODS
         for label, req in _variants(req)]


@pytest.mark.parametrize("short,label,method,request_msg,resp_cls", CASES,
                         ids=["%s-%s" % (c[0], c[1]) for c in CASES])
def test_same_answer_on_both_ports(server, channel, short, label, method, request_msg, resp_cls):
    before = digest(server)
    try:
        grpc_reply = grpc_call(channel, short, method, request_msg)
        grpc_outcome = ("OK", None)
    except grpc.RpcError as e:
        grpc_outcome = (e.code().name, grpc_error_info(e)[0])
        grpc_reply = None
    payload = json_format.MessageToDict(request_msg)
    if method.server_streaming:
        msgs, end = server.stream(short, payload)
        assert not msgs
        http_outcome = ("OK", None)
        if "error" in end:
            code, reason, _ = connect_error_info(end["error"])
            http_outcome = (grpc_code_name(code), reason)
    else:
        st, hd, body = server.rpc(short, payload)
        if st == 200:
            http_outcome = ("OK", None)
            assert hd["content-type"] == "application/json"
            got = json_format.ParseDict(body, resp_cls())
            assert got == resp_cls.FromString(grpc_reply)
        else:
            assert hd["content-type"] == "application/json"
            code, reason, _ = connect_error_info(body)
            assert st == HTTP_STATUS[code], (st, body)
            http_outcome = (grpc_code_name(code), reason)
    assert http_outcome == grpc_outcome
    if grpc_outcome[0] != "OK":
        assert grpc_outcome[1], "every memnode error carries a reason"
    assert digest(server) == before, "an invalid request changed the machine"


def test_every_code_the_table_maps(server):
    """Errors of several codes, each with its HTTP status and the reason."""
    cases = [
        ("MachineService/GetMachine", {"name": "machines/nope"}, 404, "not_found",
         "MACHINE_NOT_FOUND"),
        ("MachineService/CreateMachine", {"machineId": "default"}, 409, "already_exists",
         "MACHINE_EXISTS"),
        ("MachineService/CreateMachine",
         {"machineId": "x", "machine": {"topology": {"nodes": 100}}}, 400, "invalid_argument",
         "INVALID_TOPOLOGY"),
        ("KsmService/StepKsm", {"name": "machines/default/ksm", "visits": "1001"}, 429,
         "resource_exhausted", "VISITS_LIMIT"),
        ("MachineService/GetPageFrame", {"machine": "machines/default", "pfn": "100000"}, 400,
         "out_of_range", "PFN_OUT_OF_RANGE"),
        ("MemoryBlockService/ResumeOffline", {"name": "machines/default/memoryBlocks/1"}, 400,
         "failed_precondition", "NO_PAUSED_OFFLINE"),
        ("MachineService/SaveMachineSnapshot", {"name": "machines/default"}, 400,
         "failed_precondition", "NO_STATE_DIR"),
    ]
    for method, payload, status, code, reason in cases:
        st, hd, body = server.rpc(method, payload)
        assert (st, connect_error_info(body)[:2]) == (status, (code, reason)), (method, body)


def test_json_and_binary_codecs(server):
    from memnode.v1 import ksm_pb2
    st, hd, body = server.rpc("KsmService/GetKsm", {"name": "machines/default/ksm"})
    assert st == 200 and hd["content-type"] == "application/json"
    # Canonical JSON: lowerCamelCase, 64-bit integers as strings, zeros printed.
    assert body["name"] == "machines/default/ksm" and body["pagesShared"] == "0"
    assert body["pagesToScan"] == 100
    st, hd, raw = server.request("/memnode.v1.KsmService/GetKsm",
                                 ksm_pb2.GetKsmRequest(name="machines/default/ksm")
                                 .SerializeToString(),
                                 {"Content-Type": "application/proto"})
    assert st == 200 and hd["content-type"] == "application/proto"
    assert ksm_pb2.Ksm.FromString(raw).name == "machines/default/ksm"
    # Proto field names are accepted too (canonical JSON parsers must).
    st, _, body = server.rpc("KsmService/GetKsm", {"name": "machines/default/ksm"},
                             extra={"Connect-Protocol-Version": "1"})
    assert st == 200
    st, _, body = server.rpc("MachineService/ListPageFrames",
                             {"machine": "machines/default", "start_pfn": "0", "count": "1"})
    assert st == 200 and body["frames"][0]["pfn"] == "0"


def test_protocol_errors(server):
    s = server
    # Wrong media type: 415 with the accepted ones.
    st, hd, _ = s.request("/memnode.v1.KsmService/GetKsm", "{}", {"Content-Type": "text/plain"})
    assert st == 415 and "application/json" in hd["accept-post"]
    st, hd, _ = s.request("/memnode.v1.EventService/WatchEvents", "{}",
                          {"Content-Type": "application/json"})
    assert st == 415 and "application/connect+json" in hd["accept-post"]
    # Not POST.
    st, hd, _ = s.request("/memnode.v1.KsmService/GetKsm", method="GET")
    assert st == 405 and hd["allow"] == "POST"
    # Unknown method: 404 (read by Connect clients as unimplemented).
    st, _, body = s.rpc("KsmService/NoSuchMethod", {})
    assert st == 404 and connect_error_info(body)[:2] == ("unimplemented", "UNKNOWN_METHOD")
    # Bad JSON, unknown field, wrong type.
    for bad in ("{", '{"nmae": "machines/default"}', '{"name": 5}'):
        st, _, body = s.rpc("MachineService/GetMachine", bad)
        assert st == 400 and connect_error_info(body)[:2] == ("invalid_argument", "INVALID_BODY")
    # Bad binary body.
    st, _, body = s.request("/memnode.v1.MachineService/GetMachine", b"\xff\xff\xff",
                            {"Content-Type": "application/proto"})
    assert st == 400 and connect_error_info(json.loads(body))[1] == "INVALID_BODY"
    # Timeout header.
    st, _, body = s.rpc("KsmService/GetKsm", {"name": "machines/default/ksm"},
                        extra={"Connect-Timeout-Ms": "soon"})
    assert st == 400 and connect_error_info(body)[1] == "INVALID_HEADER"
    st, _, body = s.rpc("KsmService/GetKsm", {"name": "machines/default/ksm"},
                        extra={"Connect-Timeout-Ms": "5000"})
    assert st == 200
    # Compression is not offered.
    st, _, body = s.rpc("KsmService/GetKsm", {"name": "machines/default/ksm"},
                        extra={"Content-Encoding": "gzip"})
    assert st == 501 and connect_error_info(body)[:2] == ("unimplemented", "UNSUPPORTED_ENCODING")
    st, _, body = s.rpc("KsmService/GetKsm", {}, extra={"Connect-Protocol-Version": "2"})
    assert st == 400 and connect_error_info(body)[1] == "INVALID_HEADER"
    # Streams: exactly one request message.
    data = json.dumps({"name": "machines/default"}).encode()
    env = struct.pack(">BI", 0, len(data)) + data
    for body in (b"", env + env, env[:-1]):
        st, _, b = s.request("/memnode.v1.EventService/WatchEvents", body,
                             {"Content-Type": "application/connect+json"})
        msgs, end = parse_envelopes(b)
        assert st == 200 and not msgs
        assert connect_error_info(end["error"])[:2] == ("invalid_argument", "INVALID_BODY")
    assert s.alive()


def test_limits_are_the_grpc_ports(server, channel):
    s = server
    st, _, p = s.rpc("ProcessService/CreateProcess",
                     {"parent": "machines/default", "process": {"homeNode": 1}})
    assert st == 200
    st, _, mm = s.rpc("ProcessService/Mmap", {"name": p["name"], "length": str(2 * MAX_REQUEST_BYTES),
                                              "prot": 3})
    assert st == 200 and mm["errnum"] == "ERRNO_OK"
    before = digest(s)
    data = base64.b64encode(b"x" * (MAX_REQUEST_BYTES + 1)).decode()
    st, _, body = s.rpc("ProcessService/WriteMemory",
                        {"name": p["name"], "address": mm["address"], "data": data})
    code, reason, md = connect_error_info(body)
    assert (st, code, reason) == (429, "resource_exhausted", "REQUEST_TOO_LARGE")
    assert md["limit"] == str(MAX_REQUEST_BYTES)
    # The same through gRPC.
    from memnode.v1 import process_pb2
    with pytest.raises(grpc.RpcError) as e:
        stub = channel.unary_unary("/memnode.v1.ProcessService/WriteMemory",
                                   request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=lambda b: b)
        stub(process_pb2.WriteMemoryRequest(name=p["name"], address=int(mm["address"]),
                                            data=b"x" * (MAX_REQUEST_BYTES + 1)), timeout=30)
    assert grpc_error_info(e.value)[0] == "REQUEST_TOO_LARGE"
    # Exactly the limit is fine.
    data = base64.b64encode(b"y" * MAX_REQUEST_BYTES).decode()
    st, _, body = s.rpc("ProcessService/WriteMemory",
                        {"name": p["name"], "address": mm["address"], "data": data})
    assert st == 200 and body["bytesDone"] == str(MAX_REQUEST_BYTES)
    # A body beyond the HTTP limit ((limit + 1 MiB) * 3/2 + 64 KiB) is refused
    # with the same reason: announced by Content-Length, before it is read...
    body_limit = (MAX_REQUEST_BYTES + (1 << 20)) * 3 // 2 + (64 << 10)
    c = s.connection()
    c.putrequest("POST", "/memnode.v1.MachineService/GetMachine")
    c.putheader("Content-Type", "application/json")
    c.putheader("Content-Length", str(body_limit + 1))
    c.endheaders()
    r = c.getresponse()
    code, reason, md = connect_error_info(json.loads(r.read()))
    c.close()
    assert (r.status, reason, md["field"], md["limit"]) == (429, "REQUEST_TOO_LARGE", "body",
                                                            str(body_limit))
    # ... or found while reading a chunked body.
    c = s.connection()
    c.request("POST", "/memnode.v1.MachineService/GetMachine",
              body=iter([b"x" * 65536] * ((body_limit + 50000) // 65536 + 1)),
              headers={"Content-Type": "application/json"}, encode_chunked=True)
    r = c.getresponse()
    code, reason, md = connect_error_info(json.loads(r.read()))
    c.close()
    assert (r.status, reason, md["field"]) == (429, "REQUEST_TOO_LARGE", "body")
    assert s.alive()
    assert digest(s) != before  # the write of exactly the limit happened
    s.rpc("ProcessService/ExitProcess", {"name": p["name"]})


def test_host_check_on_a_loopback_server_without_tokens(server):
    for host in ("evil.example", "evil.example:80", "10.0.0.1"):
        st, _, body = server.request("/memnode.v1.MachineService/ListMachines", "{}",
                                     {"Content-Type": "application/json", "Host": host})
        assert st == 403 and connect_error_info(json.loads(body))[1] == "HOST_NOT_ALLOWED"
        st, _, _ = server.request("/", method="GET", headers={"Host": host})
        assert st == 403
    for host in ("localhost:%d" % server.port, "127.0.0.1:%d" % server.port, "[::1]:1",
                 "LOCALHOST"):
        st, _, _ = server.request("/memnode.v1.MachineService/ListMachines", "{}",
                                  {"Content-Type": "application/json", "Host": host})
        assert st == 200, host


def test_web_view_assets(server):
    st, hd, body = server.request("/", method="GET")
    assert st == 200 and hd["content-type"].startswith("text/html")
    assert "default-src 'self'" in hd["content-security-policy"]
    assert hd["x-content-type-options"] == "nosniff"
    scripts = re.findall(rb'<script[^>]*src="([^"]+)"', body)
    assert scripts, "the page loads its script"
    for src in scripts + re.findall(rb'<link[^>]*href="([^"]+)"', body):
        st, hd, asset = server.request("/" + src.decode().lstrip("./"), method="GET")
        assert st == 200 and asset, src
    st, _, _ = server.request("/app.js", method="GET")
    assert st == 200
    st, hd, b = server.request("/app.js", method="HEAD")
    assert st == 200 and b == b"" and int(hd["content-length"]) > 0
    assert server.request("/nope.js", method="GET")[0] == 404
    assert server.request("/", method="POST")[0] == 405
    assert server.request("/../../etc/passwd", method="GET")[0] in (400, 404)


def test_watch_events_stream_over_http(server):
    """A stream opened on a raw connection receives the events of calls made
    on the other port, and the end-stream message closes it."""
    s = server
    st, _, _ = s.rpc("MachineService/CreateMachine",
                     {"machineId": "watch", "machine": {"clockMode": "CLOCK_MODE_MANUAL"}})
    assert st == 200
    c = s.connection()
    data = json.dumps({"name": "machines/watch", "kinds": ["EVENT_KIND_PROCESS_EXIT"]}).encode()
    c.request("POST", "/memnode.v1.EventService/WatchEvents",
              body=struct.pack(">BI", 0, len(data)) + data,
              headers={"Content-Type": "application/connect+json"})
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Transfer-Encoding") == "chunked"
    seen = []
    deadline = time.monotonic() + 20
    sock = r.fp.raw._sock  # noqa: SLF001 (poll the stream without a socket timeout:
    # a SocketIO that once timed out refuses every later read)
    while not seen and time.monotonic() < deadline:
        # The stream may be attached a moment after its headers: exit
        # processes until one exit arrives.
        st, _, p = s.rpc("ProcessService/CreateProcess", {"parent": "machines/watch"})
        s.rpc("ProcessService/ExitProcess", {"name": p["name"]})
        if not select.select([sock], [], [], 0.3)[0]:
            continue  # nothing yet (no event is buffered: none existed before)
        head = r.read(5)
        flags, n = struct.unpack(">BI", head)
        assert flags == 0
        seen.append(json.loads(r.read(n)))
    assert seen and seen[0]["kind"] == "EVENT_KIND_PROCESS_EXIT"
    st, _, _ = s.rpc("MachineService/DeleteMachine", {"name": "machines/watch"})
    assert st == 200
    rest = r.read()
    c.close()
    msgs, end = parse_envelopes(rest)
    assert all(m["kind"] == "EVENT_KIND_PROCESS_EXIT" for m in msgs)
    assert connect_error_info(end["error"])[:2] == ("not_found", "MACHINE_NOT_FOUND")


# --- security ------------------------------------------------------------------


def _openssl(*args, cwd):
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
    (d / "tokens").write_text("%s admin\n%s read\n" % (ADMIN, READER))
    return d


def _tls_context(pki, client=False):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if client:
        ctx.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
    return ctx


def test_tls_and_tokens(pki):
    s = Memnoded(["--listen=127.0.0.1:0", "--metrics_address=", "--http_address=127.0.0.1:0",
                  "--tls_cert=%s" % (pki / "server.pem"), "--tls_key=%s" % (pki / "server.key"),
                  "--token_file=%s" % (pki / "tokens"), "--nodes=1", "--blocks_per_node=2",
                  "--pages_per_block=64", "--clock=manual"])
    try:
        assert s.https, "with --tls_cert the HTTP port speaks TLS"
        ctx = _tls_context(pki)
        get = ("MachineService/GetMachine", {"name": "machines/default"})
        # No token, an unknown token: UNAUTHENTICATED, 401.
        for token in (None, "not-a-valid-token-at-all"):
            st, _, body = s.rpc(*get, token=token, context=ctx)
            assert (st, connect_error_info(body)[:2]) == (401, ("unauthenticated",
                                                                "UNAUTHENTICATED"))
        # A read token reads and cannot change anything: PERMISSION_DENIED, 403.
        st, _, body = s.rpc(*get, token=READER, context=ctx)
        assert st == 200 and body["name"] == "machines/default"
        st, _, body = s.rpc("MachineService/DeleteMachine", {"name": "machines/default"},
                            token=READER, context=ctx)
        assert (st, connect_error_info(body)[1]) == (403, "PERMISSION_DENIED")
        # Streams are authenticated too.
        c = s.connection(ctx)
        data = json.dumps({"name": "machines/default"}).encode()
        c.request("POST", "/memnode.v1.EventService/WatchEvents",
                  body=struct.pack(">BI", 0, len(data)) + data,
                  headers={"Content-Type": "application/connect+json"})
        msgs, end = parse_envelopes(c.getresponse().read())
        c.close()
        assert connect_error_info(end["error"])[1] == "UNAUTHENTICATED"
        # The admin token changes state; the machine is gone afterwards.
        st, _, _ = s.rpc("MachineService/DeleteMachine", {"name": "machines/default"},
                         token=ADMIN, context=ctx)
        assert st == 200
        st, _, body = s.rpc(*get, token=ADMIN, context=ctx)
        assert connect_error_info(body)[1] == "MACHINE_NOT_FOUND"
        # With tokens there is no Host check (the token is the protection).
        st, _, _ = s.rpc("MachineService/ListMachines", {}, token=READER, context=ctx,
                         extra={"Host": "memnode.example"})
        assert st == 200
        # Plain HTTP to the TLS port gets no answer.
        c = http.client.HTTPConnection(s.host, s.port, timeout=10)
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            c.request("POST", "/memnode.v1.MachineService/ListMachines", body="{}",
                      headers={"Content-Type": "application/json"})
            c.getresponse().read()
        c.close()
        # A client that does not trust the CA refuses the server.
        with pytest.raises(ssl.SSLError):
            s.rpc("MachineService/ListMachines", {}, token=READER,
                  context=ssl.create_default_context())
        assert s.alive()
    finally:
        s.stop()


def test_mutual_tls(pki):
    s = Memnoded(["--listen=127.0.0.1:0", "--metrics_address=", "--http_address=localhost:0",
                  "--tls_cert=%s" % (pki / "server.pem"), "--tls_key=%s" % (pki / "server.key"),
                  "--tls_client_ca=%s" % (pki / "ca.pem"), "--default_machine=false"])
    try:
        st, _, body = s.rpc("MachineService/ListMachines", {}, context=_tls_context(pki, True))
        assert st == 200 and body["machines"] == []
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            s.rpc("MachineService/ListMachines", {}, context=_tls_context(pki, False))
        assert s.alive()
    finally:
        s.stop()


def _run_to_exit(flags, timeout=20):
    p = subprocess.run([MEMNODED] + flags, capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stderr.decode(errors="replace")


@pytest.mark.parametrize("flags,rc,needle", [
    (["--http_address=0.0.0.0:0"], 2, "refusing to serve HTTP on 0.0.0.0:0"),
    (["--http_address=nonsense"], 2, "--http_address must be host:port"),
    (["--http_address=example.com:80"], 2, "is not an IPv4 address"),
])
def test_bad_http_address_refuses_to_start(flags, rc, needle):
    code, err = _run_to_exit(["--listen=127.0.0.1:0", "--metrics_address=",
                              "--default_machine=false"] + flags)
    assert code == rc and needle in err, err


def test_http_port_in_use(server):
    code, err = _run_to_exit(["--listen=127.0.0.1:0", "--metrics_address=",
                              "--default_machine=false",
                              "--http_address=127.0.0.1:%d" % server.port])
    assert code == 1 and "cannot serve HTTP" in err, err


def test_config_file_key_and_graceful_shutdown(tmp_path):
    conf = tmp_path / "memnoded.conf"
    conf.write_text("listen=127.0.0.1:0\nmetrics_address=\nhttp_address=127.0.0.1:0\n"
                    "default_machine=true\nnodes=1\nblocks_per_node=2\npages_per_block=64\n"
                    "clock=manual\n")
    s = Memnoded(["--config=%s" % conf])
    try:
        assert s.http_url.startswith("http://127.0.0.1:")
        c = s.connection()
        data = json.dumps({"name": "machines/default"}).encode()
        c.request("POST", "/memnode.v1.EventService/WatchEvents",
                  body=struct.pack(">BI", 0, len(data)) + data,
                  headers={"Content-Type": "application/connect+json"})
        r = c.getresponse()
        assert r.status == 200
        # SIGTERM: the open stream ends with UNAVAILABLE / SHUTTING_DOWN and the
        # server exits 0.
        s.proc.send_signal(signal.SIGTERM)
        msgs, end = parse_envelopes(r.read())
        c.close()
        assert connect_error_info(end["error"])[:2] == ("unavailable", "SHUTTING_DOWN")
        assert s.proc.wait(timeout=20) == 0
    finally:
        s.stop()
