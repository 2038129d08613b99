"""A memnoded child process with flags of the test's choosing (for the
security and bad-input tests, which need their own limits, TLS and tokens).
conftest.py has put the build's stubs and the Python client on sys.path."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import tempfile
import time

from conftest import BUILD_DIR

_LISTENING = re.compile(rb"^LISTENING (\S+:\d+)\s*$")
_METRICS = re.compile(rb"^METRICS (\S+:\d+)\s*$")


class Memnoded:
    def __init__(self, flags, timeout: float = 30.0):
        binary = BUILD_DIR / "server" / "memnoded"
        self.log = tempfile.NamedTemporaryFile(prefix="memnoded-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([str(binary)] + list(flags), stdout=subprocess.PIPE,
                                     stderr=self.log, stdin=subprocess.DEVNULL,
                                     cwd=str(BUILD_DIR), start_new_session=True)
        self.address = None
        self.metrics_address = None
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
                m = _METRICS.match(line)
                if m:
                    self.metrics_address = m.group(1).decode()
                m = _LISTENING.match(line)
                if m:
                    self.address = m.group(1).decode()
        if self.address is None:
            self.stop()
            raise RuntimeError("memnoded did not start: rc=%s\n%s" % (self.proc.returncode,
                                                                   self.stderr()))

    def stderr(self) -> str:
        with open(self.log.name, "rb") as f:
            return f.read()[-4000:].decode(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
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


def run_to_exit(flags, timeout: float = 20.0):
    """Runs memnoded expecting it to refuse to start: (exit code, stderr)."""
    binary = BUILD_DIR / "server" / "memnoded"
    p = subprocess.run([str(binary)] + list(flags), capture_output=True, timeout=timeout,
                       cwd=str(BUILD_DIR), stdin=subprocess.DEVNULL)
    return p.returncode, p.stderr.decode(errors="replace")


def error_info(err):
    """(reason, domain, metadata) of the google.rpc.ErrorInfo in an RpcError's
    grpc-status-details-bin trailer, or None when there is none."""
    from google.rpc import error_details_pb2, status_pb2
    for key, value in (err.trailing_metadata() or ()):
        if key == "grpc-status-details-bin":
            st = status_pb2.Status.FromString(value)
            for d in st.details:
                info = error_details_pb2.ErrorInfo()
                if d.Unpack(info):
                    return info.reason, info.domain, dict(info.metadata)
    return None


def all_methods():
    """Every RPC of every memnode.v1 service, from the generated descriptors:
    [(full method path, method descriptor, request class, response class)]."""
    from google.protobuf import symbol_database
    from memnode.v1 import (events_pb2, hotplug_pb2, ksm_pb2, machine_pb2, numa_pb2,
                            process_pb2)
    db = symbol_database.Default()
    out = []
    for mod in (machine_pb2, process_pb2, ksm_pb2, numa_pb2, hotplug_pb2, events_pb2):
        for svc in mod.DESCRIPTOR.services_by_name.values():
            for m in svc.methods:
                out.append(("/%s/%s" % (svc.full_name, m.name), m,
                            db.GetSymbol(m.input_type.full_name),
                            db.GetSymbol(m.output_type.full_name)))
    return out


def invoke(channel, path, method, request_bytes, metadata=None, timeout=30.0):
    """Calls `path` with already serialized request bytes; returns the
    response(s) or raises grpc.RpcError."""
    ident = lambda b: b  # noqa: E731
    if method.server_streaming:
        call = channel.unary_stream(path, request_serializer=ident, response_deserializer=ident)
        return list(call(request_bytes, metadata=metadata, timeout=timeout))
    call = channel.unary_unary(path, request_serializer=ident, response_deserializer=ident)
    return call(request_bytes, metadata=metadata, timeout=timeout)
