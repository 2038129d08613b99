"""deploy/docker/Dockerfile built and run by a real Docker engine
(`make test-container`; not part of `make test`: a cold run takes minutes).

1. Docker: Debian's docker.io (scripts/deps.sh container). When no daemon
   answers, this test starts dockerd and stops it again at the end.
2. Base images: the Dockerfile's FROM images when the engine has them;
   otherwise (no image registry is reachable here) each is made locally:
   `debootstrap --variant=minbase` of this machine's Debian release from its
   configured package source (/etc/apt/sources.list.d/debian.sources, also
   copied into the image so that apt in the build uses the same source),
   then `docker import`, tagged with the FROM name.
3. The image is built with the command in the Dockerfile's header, from the
   repository root (.dockerignore applies), with the classic builder.
4. It runs as docs/DEPLOY.md shows (read-only root, no capabilities, the
   state volume, the token file mounted as /run/secrets/memnode_tokens), its
   ports published on ephemeral 127.0.0.1 ports; the test waits for the
   image's HEALTHCHECK to report healthy.
5. memnodectl (the build's, on the host) drives it through the published
   port: refused without a token, a process with mapped and filled memory
   with it; /metrics answers.
6. `docker stop` (SIGTERM): exit 0, the snapshot is in the state volume;
   `docker start`: healthy again, the machine restored with the same state
   digest and the same process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from deploy_common import REPO, memnodectl_binary
from shipped import DOCKERFILE, parse_dockerfile

DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")


def run(*cmd, timeout=600, check=True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check:
        assert r.returncode == 0, f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def timed(label: str, started: float) -> None:
    print(f"container_e2e: {label}: {time.monotonic() - started:.1f} s", flush=True)


@pytest.fixture(scope="module")
def docker():
    """A Docker engine that answers; started here (and stopped after) if none does."""
    missing = [t for t in ("docker", "dockerd", "debootstrap") if shutil.which(t) is None]
    assert not missing, f"needs {missing}: Debian packages docker.io, debootstrap (scripts/deps.sh container)"
    assert os.geteuid() == 0, "needs root (starts dockerd, imports base images)"
    proc = None
    if run("docker", "info", check=False, timeout=60).returncode != 0:
        log = open(tempfile.mktemp(prefix="memnode-dockerd-", suffix=".log"), "w")
        proc = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while run("docker", "info", check=False, timeout=60).returncode != 0:
            assert proc.poll() is None, f"dockerd exited {proc.returncode}: see {log.name}"
            assert time.monotonic() < deadline, f"dockerd did not answer within 60 s: see {log.name}"
            time.sleep(0.5)
    yield
    if proc is not None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def debian_source(codename: str) -> str:
    """The URI of this machine's Debian archive for `codename` (deb822)."""
    text = DEBIAN_SOURCES.read_text()
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
        if "deb" in fields.get("Types", "").split() and codename in fields.get("Suites", "").split():
            return fields["URIs"].split()[0]
    raise AssertionError(f"{DEBIAN_SOURCES} has no deb entry for {codename}")


def ensure_base_images(images: list[str]) -> None:
    wanted = [i for i in images if run("docker", "image", "inspect", i, check=False).returncode != 0]
    if not wanted:
        return
    os_release = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', Path("/etc/os-release").read_text(), re.M))
    codename = os_release["VERSION_CODENAME"]
    for image in wanted:
        assert image.split(":")[0] == "debian" and image.split(":")[1].startswith(codename), (
            f"{image} is not this machine's Debian ({codename}): cannot make it here")
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="memnode-debootstrap-"))
    try:
        rootfs = root / "rootfs"
        run("debootstrap", "--variant=minbase", codename, str(rootfs), debian_source(codename),
            timeout=1800)
        (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
        shutil.copy(DEBIAN_SOURCES, rootfs / "etc/apt/sources.list.d" / DEBIAN_SOURCES.name)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        r = subprocess.run(["docker", "import", "--change", 'CMD ["bash"]',
                            "--change", "LABEL org.memnode.base=debootstrap", "-", wanted[0]],
                           stdin=tar.stdout, capture_output=True, text=True, timeout=600)
        tar.stdout.close()
        assert tar.wait() == 0 and r.returncode == 0, r.stderr
        for image in wanted[1:]:
            run("docker", "tag", wanted[0], image)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    timed(f"base image {', '.join(wanted)} by debootstrap", started)


def build_command() -> list[str]:
    m = re.search(r"^#\s+(docker build .*)$", DOCKERFILE.read_text(), re.M)
    assert m, "the Dockerfile's header no longer shows the build command"
    return m.group(1).split()


@pytest.fixture(scope="module")
def image(docker):
    stages = parse_dockerfile(DOCKERFILE.read_text())
    ensure_base_images([s[0][1].split()[0] for s in stages])
    cmd = build_command()
    tag = cmd[cmd.index("-t") + 1]
    started = time.monotonic()
    # The classic builder: it takes FROM images from the engine's store (no
    # registry is reachable here) and reads .dockerignore at the root.
    run(*cmd, cwd=REPO, timeout=3600, env=dict(os.environ, DOCKER_BUILDKIT="0"))
    timed("docker build", started)
    return tag


def docker_inspect(name: str) -> dict:
    return json.loads(run("docker", "inspect", name).stdout)[0]


def wait_healthy(name: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = docker_inspect(name)["State"]
        health = state.get("Health", {}).get("Status")
        if health == "healthy":
            return
        assert state["Running"], f"container exited {state['ExitCode']}:\n{run('docker', 'logs', name).stderr}"
        assert health != "unhealthy", f"unhealthy: {state['Health']['Log'][-1:]}"
        assert time.monotonic() < deadline, f"not healthy after {timeout} s: {state.get('Health')}"
        time.sleep(1)


def published(name: str, port: int) -> str:
    (binding,) = docker_inspect(name)["NetworkSettings"]["Ports"][f"{port}/tcp"]
    assert binding["HostIp"] == "127.0.0.1"
    return f"127.0.0.1:{binding['HostPort']}"


def test_container_runs_serves_stops_and_restores(image, tmp_path):
    started = time.monotonic()
    name = f"memnode-test-{os.getpid()}"
    volume = f"{name}-state"
    token = os.urandom(16).hex()
    tokens = tmp_path / "memnode_tokens"
    tokens.write_text(f"{token} admin\n")
    os.chown(tokens, 10001, 10001)  # the image's user reads it (docs/DEPLOY.md)
    tokens.chmod(0o400)
    client_token = tmp_path / "client_token"
    client_token.write_text(token + "\n")
    ctl = [str(memnodectl_binary()), "--timeout=10"]
    try:
        run("docker", "run", "-d", "--name", name,
            "-p", "127.0.0.1::50051", "-p", "127.0.0.1::9464",
            "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges",
            "-v", f"{volume}:/var/lib/memnode",
            "-v", f"{tokens}:/run/secrets/memnode_tokens:ro", image)
        wait_healthy(name)
        timed("started and healthy", started)
        grpc_addr, metrics_addr = published(name, 50051), published(name, 9464)
        server = [*ctl, f"--server={grpc_addr}"]
        auth = [*server, f"--token-file={client_token}"]

        r = run(*server, "machine", "list", check=False)
        assert r.returncode == 3 and "UNAUTHENTICATED" in r.stderr, (r.returncode, r.stderr)
        assert run(*server, "health").stdout.strip() == "SERVING"
        pid = json.loads(run(*auth, "--json", "process", "create").stdout)["pid"]
        addr = run(*auth, "mmap", str(pid), "1M").stdout.strip()
        run(*auth, "fill", str(pid), addr, "1M", "--byte", "7")
        digest = json.loads(run(*auth, "--json", "machine", "check").stdout)
        assert digest["ok"] is True
        sums = run(*auth, "digest", str(pid), addr, "1M").stdout
        with urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=10) as resp:
            assert resp.status == 200
            assert b"memnode_" in resp.read()

        # SIGTERM (the image's STOPSIGNAL): a clean exit that saves machines.
        run("docker", "stop", "-t", "60", name, timeout=120)
        state = docker_inspect(name)["State"]
        assert state["ExitCode"] == 0, state
        logs = run("docker", "logs", name)
        assert "machines saved to /var/lib/memnode" in logs.stdout, logs.stdout + logs.stderr
        mountpoint = Path(json.loads(run("docker", "volume", "inspect", volume).stdout)[0]["Mountpoint"])
        snapshot = mountpoint / "default.mnsnap"
        assert snapshot.is_file() and snapshot.stat().st_size > 0, sorted(mountpoint.iterdir())
        assert snapshot.stat().st_uid == 10001

        run("docker", "start", name)
        wait_healthy(name)
        logs = run("docker", "logs", name)
        assert "memnoded: restored machines/default from /var/lib/memnode" in logs.stdout, logs.stdout
        grpc_addr = published(name, 50051)
        auth = [*ctl, f"--server={grpc_addr}", f"--token-file={client_token}"]
        assert json.loads(run(*auth, "--json", "machine", "check").stdout) == digest
        assert run(*auth, "digest", str(pid), addr, "1M").stdout == sums
        timed("whole container run", started)
    finally:
        r = run("docker", "logs", name, check=False)
        print(r.stdout[-2000:], r.stderr[-2000:])
        run("docker", "rm", "-f", name, check=False)
        run("docker", "volume", "rm", "-f", volume, check=False)
