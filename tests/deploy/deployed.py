"""memnoded started the way a deployment starts it, contained.

A ``Deployment`` describes what a deployment file sets up for memnoded: the
command line (taken verbatim from the file: the unit's ExecStart, the
image's ENTRYPOINT + CMD, the container's args), the files it puts at
absolute paths (the config file, the token secret, the binaries), the empty
directories (the state volume) and the user it runs as. ``Deployed`` starts
exactly that command, nothing added or overridden:

- in a network namespace made for it (``ip netns add``) whose only
  interface is its loopback, up, with 127.0.0.1 and POD_ADDRESS (192.0.2.1,
  TEST-NET-1), which plays the container's or pod's own address: a memnoded
  that binds 0.0.0.0:50051 binds it there, not on the host, is reached at
  POD_ADDRESS as Docker's port forwarding and the kubelet reach it, and
  nothing leaves the namespace (one bound to 127.0.0.1 is not reached at
  POD_ADDRESS);
- in a private mount namespace (``unshare --mount``) where each file and
  directory of the deployment is overlaid at its absolute path
  (/etc/memnode/memnoded.conf, /run/secrets/..., /var/lib/memnode,
  /usr/local/bin/memnoded): the host's own paths are never written;
- as the deployment's user (``setpriv``), so file modes matter as they do
  there.

``probe()`` runs tests/deploy/probe.py inside the namespace: gRPC health,
an RPC without and with the token, and /metrics. Files the server writes
into its directories (snapshots in the state directory) are visible in
``Deployed.path(abs_path)`` after it stops.

Needs root (network and mount namespaces), iproute2 and util-linux
(scripts/deps.sh test installs them); without root the tests fail saying so.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
POD_ADDRESS = "192.0.2.1"
_counter = itertools.count()


def require_namespaces() -> None:
    """Fails (never skips) when the namespaces cannot be made here."""
    missing = [t for t in ("ip", "unshare", "setpriv", "mount") if shutil.which(t) is None]
    assert not missing, (f"starting the shipped configs needs {missing} "
                         "(Debian packages iproute2, util-linux, mount: scripts/deps.sh test)")
    assert os.geteuid() == 0, ("starting the shipped configs needs root: they run in a network "
                               "and mount namespace made by the test (ip netns add, unshare --mount)")


@dataclass
class File:
    data: bytes
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


@dataclass
class Dir:
    mode: int = 0o755
    uid: int = 0
    gid: int = 0


@dataclass
class Deployment:
    name: str
    argv: list[str]
    files: dict[str, File] = field(default_factory=dict)
    dirs: dict[str, Dir] = field(default_factory=dict)
    uid: int = 0
    gid: int = 0
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"


def _run(*cmd: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr}"


def _deepest_existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


class Deployed:
    """The deployment's memnoded, running in its namespaces."""

    def __init__(self, deployment: Deployment, timeout: float = 60.0, stage: Path | None = None):
        require_namespaces()
        self.deployment = deployment
        self.ns = f"memnode-{os.getpid()}-{next(_counter)}"
        self._own_stage = stage is None
        self.stage = Path(tempfile.mkdtemp(prefix="memnode-deploy-")) if stage is None else stage
        self.proc = None
        self.lines: list[str] = []
        self._rest = b""
        _run("ip", "netns", "add", self.ns)
        try:
            _run("ip", "-n", self.ns, "addr", "add", f"{POD_ADDRESS}/32", "dev", "lo")
            _run("ip", "-n", self.ns, "link", "set", "lo", "up")
            self._start(timeout)
        except BaseException:
            self.close()
            raise

    # --- the mount namespace -------------------------------------------------

    def path(self, absolute: str) -> Path:
        """Where an absolute path of the deployment lives on the host."""
        return self.stage / "upper" / absolute.lstrip("/")

    def _populate(self) -> tuple[list[Path], list[Path]]:
        """Writes the deployment's files and directories under stage/upper.
        Returns the host directories to overlay (the deepest existing
        ancestor of each new path, shallow ones first) and the existing
        directories to replace by a bind mount of their staged copy (a
        volume mounted over a directory of the image, like /tmp)."""
        d = self.deployment
        roots: set[Path] = set()
        binds: list[Path] = []
        for p, spec in sorted(d.dirs.items()):
            if Path(p).exists():
                binds.append(Path(p))
            else:
                roots.add(_deepest_existing(Path(p)))
            host = self.path(p)
            if not host.exists():
                host.mkdir(parents=True)
            os.chown(host, spec.uid, spec.gid)
            os.chmod(host, spec.mode)
        for p, spec in sorted(d.files.items()):
            if not any(Path(p).is_relative_to(b) for b in binds):
                roots.add(_deepest_existing(Path(p).parent))
            host = self.path(p)
            host.parent.mkdir(parents=True, exist_ok=True)
            host.write_bytes(spec.data)
            os.chown(host, spec.uid, spec.gid)
            os.chmod(host, spec.mode)
        # Directories created on the way are searchable by everyone.
        for dirpath, dirnames, _ in os.walk(self.stage / "upper"):
            for n in dirnames:
                q = Path(dirpath) / n
                if "/" + str(q.relative_to(self.stage / "upper")) not in d.dirs:
                    os.chmod(q, 0o755)
        assert not any(self.stage.is_relative_to(r) for r in roots), (
            f"the stage {self.stage} lies under an overlaid directory {sorted(roots)}")
        # Binds over a directory holding the stage go last (the stage is not
        # reachable by path after them).
        binds.sort(key=lambda b: (self.stage.is_relative_to(b), len(b.parts)))
        return sorted(roots, key=lambda r: len(r.parts)), binds

    def _script(self, roots: list[Path], binds: list[Path]) -> str:
        d = self.deployment
        lines = ["set -e"]
        for i, root in enumerate(roots):
            upper = self.path(str(root)) if str(root) != "/" else self.stage / "upper"
            upper.mkdir(parents=True, exist_ok=True)
            work = self.stage / "work" / self.ns / str(i)
            work.mkdir(parents=True)
            lines.append(f"mount -t overlay overlay -o lowerdir={shlex.quote(str(root))},"
                         f"upperdir={shlex.quote(str(upper))},workdir={shlex.quote(str(work))} "
                         f"{shlex.quote(str(root))}")
        for b in binds:
            lines.append(f"mount --bind {shlex.quote(str(self.path(str(b))))} {shlex.quote(str(b))}")
        lines.append(f"cd {shlex.quote(d.workdir)}")
        env = " ".join(shlex.quote(f"{k}={v}") for k, v in d.env.items())
        user = (f"setpriv --reuid={d.uid} --regid={d.gid} --clear-groups --inh-caps=-all "
                if d.uid != 0 else "")
        lines.append(f"exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
                     f"{env} {user}{' '.join(shlex.quote(a) for a in d.argv)}")
        return "\n".join(lines) + "\n"

    def _start(self, timeout: float) -> None:
        script = self.stage / f"start-{self.ns}.sh"
        script.write_text(self._script(*self._populate()))
        self.log = open(self.stage / "stderr.log", "w+")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "unshare", "--mount", "--propagation", "private",
             "/bin/sh", str(script)],
            stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL)
        self.started = time.monotonic()
        deadline = self.started + timeout
        fd, buf = self.proc.stdout.fileno(), b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self.lines.append(line.decode(errors="replace") + "\n")
                    if line.startswith(b"LISTENING "):
                        self._rest = buf
                        return
            elif self.proc.poll() is not None:
                break
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        raise AssertionError(f"{self.deployment.name}: memnoded did not start "
                             f"(exit {self.proc.returncode}):\n{''.join(self.lines)}{self.stderr()}")

    def stderr(self) -> str:
        self.log.flush()
        return (self.stage / "stderr.log").read_text(errors="replace")[-4000:]

    # --- talking to it --------------------------------------------------------

    def exec(self, *cmd: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
        """A command in the deployment's network namespace (host files)."""
        return subprocess.run(["ip", "netns", "exec", self.ns, *cmd], capture_output=True, text=True,
                              timeout=timeout, env=env)

    def exec_inside(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """A command as `docker exec` runs it: in memnoded's network and
        mount namespaces, as the deployment's user, with its environment."""
        d = self.deployment
        user = ["setpriv", f"--reuid={d.uid}", f"--regid={d.gid}", "--clear-groups"] if d.uid else []
        env = ["env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               *(f"{k}={v}" for k, v in d.env.items())]
        return subprocess.run(["nsenter", f"--target={self.proc.pid}", "--mount", "--net",
                               "--wd", *env, *user, *cmd],
                              capture_output=True, text=True, timeout=timeout)

    def probe(self, grpc: str, metrics: str | None = None, token_file: Path | None = None) -> dict:
        """tests/deploy/probe.py in the namespace; its JSON report."""
        cmd = ["/usr/bin/python3", str(HERE / "probe.py"), "--grpc", grpc]
        if metrics:
            cmd += ["--metrics", metrics]
        if token_file:
            cmd += ["--token-file", str(token_file)]
        r = self.exec(*cmd)
        assert r.returncode == 0, f"probe.py failed (exit {r.returncode}):\n{r.stdout}\n{r.stderr}"
        return json.loads(r.stdout)

    # --- stopping -------------------------------------------------------------

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> tuple[int, str]:
        """Sends `sig`; waits for the exit. (exit code, everything printed)."""
        # memnoded handles SIGTERM from its first line on; the short wait only
        # keeps a stop right after start from racing the LISTENING line.
        time.sleep(max(0.0, self.started + 0.3 - time.monotonic()))
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        out = (self._rest + (out or b"")).decode(errors="replace")
        return self.proc.returncode, "".join(self.lines) + out + self.stderr()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        if self._own_stage:
            shutil.rmtree(self.stage, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def conf_settings(text: str) -> dict[str, str]:
    """key=value lines of a memnoded config (comments and blanks skipped)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def new_tokens() -> tuple[str, bytes]:
    """An admin token and a token file holding it and a read token."""
    admin = os.urandom(16).hex()
    return admin, f"# made by tests/deploy\n{admin} admin\n{os.urandom(16).hex()} read\n".encode()


def port_of(address: str) -> int:
    m = re.fullmatch(r".*:(\d+)", address)
    assert m, address
    return int(m.group(1))
