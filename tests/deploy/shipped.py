"""The shipped deployments as deployed.Deployment objects, read from the
files themselves (nothing here restates a path, port or flag that a
deployment file sets):

- ``docker_image()``: deploy/docker/Dockerfile's runtime stage: ENTRYPOINT +
  CMD, USER, WORKDIR, ENV, the config file its RUN writes, the state
  directory it creates; the token secret where the config reads it (as
  ``docker run -v FILE:/run/secrets/...`` or a secret provides it);
- ``compose_service()``: the same image as deploy/docker/compose.yaml runs
  it: its secrets at /run/secrets/<name>, its volumes, its command if any;
- ``k8s_pod(objects)``: the rendered StatefulSet's container: image
  entrypoint + args, securityContext user, every volumeMount filled from
  the rendered ConfigMap, the Secret (made here, with the keys the config
  reads) and emptyDirs, with the modes and groups the kubelet gives them;
- ``systemd_service()``: deploy/systemd/memnoded.service's ExecStart, the
  config installed where the unit's header says, LoadCredential= files
  where systemd puts them, StateDirectory=, WorkingDirectory=.

Each returns (Deployment, facts) where facts holds what the probes need:
the gRPC and metrics addresses clients reach, the token file on the host.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

from deploy_common import BUILD_DIR, DEPLOY
from deployed import (POD_ADDRESS, Deployed, Deployment, Dir, File, conf_settings, new_tokens,
                      port_of)

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
COMPOSE = DEPLOY / "docker" / "compose.yaml"
UNIT = DEPLOY / "systemd" / "memnoded.service"
UNIT_CONF = DEPLOY / "systemd" / "memnoded.conf"


# --- Dockerfile ------------------------------------------------------------------

def parse_dockerfile(text: str) -> list[list[tuple[str, str]]]:
    """Stages, each a list of (INSTRUCTION, arguments), continuations joined."""
    instructions, buf = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not buf):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        instructions.append((word.upper(), rest.strip()))
        buf = ""
    stages = []
    for ins in instructions:
        if ins[0] == "FROM":
            stages.append([])
        stages[-1].append(ins)
    return stages


def run_commands(args: str) -> list[list[str]]:
    """A RUN's shell command split on && into word lists."""
    return [shlex.split(part) for part in args.split("&&")]


def baked_config(stage) -> str:
    """The memnoded.conf the runtime stage writes with printf."""
    for i, a in stage:
        if i == "RUN" and "/etc/memnode/memnoded.conf" in a:
            for c in run_commands(a):
                if c[:2] == ["printf", "%s\\n"]:
                    return "\n".join(c[2:c.index(">")]) + "\n"
    raise AssertionError("the runtime stage writes no /etc/memnode/memnoded.conf")


def _env(stage) -> dict[str, str]:
    env = {}
    for i, a in stage:
        if i == "ENV":
            for word in shlex.split(a):
                k, _, v = word.partition("=")
                env[k] = v
    return env


@dataclass
class Facts:
    grpc: str                 # where a client connects (inside the namespace)
    metrics: str | None       # the /metrics URL
    token_file: Path | None   # the token file on the host (for the probe)
    state_dir: str | None     # the state directory inside the deployment
    healthcheck: list[str] | None = None


def _binaries() -> dict[str, File]:
    files = {}
    for name, rel in (("memnoded", "server/memnoded"), ("memnodectl", "client/cpp/memnodectl")):
        files[f"/usr/local/bin/{name}"] = File((BUILD_DIR / rel).read_bytes(), 0o755)
    return files


def _listen_address(settings: dict[str, str], key: str) -> str:
    """A client's address for a listen setting: 0.0.0.0 becomes the pod's."""
    host, _, port = settings[key].rpartition(":")
    return f"{POD_ADDRESS if host in ('0.0.0.0', '[::]') else host}:{port}"


def docker_image(tmp: Path, secrets: dict[str, bytes] | None = None) -> tuple[Deployment, Facts]:
    runtime = parse_dockerfile(DOCKERFILE.read_text())[-1]
    ins: dict[str, list[str]] = {}
    for i, a in runtime:
        ins.setdefault(i, []).append(a)
    entrypoint = json.loads(ins["ENTRYPOINT"][-1])
    cmd = json.loads(ins["CMD"][-1])
    uid, gid = (int(x) for x in ins["USER"][-1].split(":"))
    config_text = baked_config(runtime)
    settings = conf_settings(config_text)
    files = _binaries()
    files["/etc/memnode/memnoded.conf"] = File(config_text.encode(), 0o644)
    dirs = {}
    # The directories the RUN creates with install -d (owner and mode).
    for i, a in runtime:
        if i != "RUN":
            continue
        for c in run_commands(a):
            if c[:2] == ["install", "-d"]:
                owner = c[c.index("-o") + 1] if "-o" in c else "root"
                mode = int(c[c.index("-m") + 1], 8) if "-m" in c else 0o755
                o = uid if owner in ("memnode", str(uid)) else 0
                dirs[c[-1]] = Dir(mode, o, gid if o else 0)
    token_file = None
    if "token_file" in settings:
        admin_file = tmp / "docker-tokens"
        if secrets is None:
            # As docker run -v FILE:PATH:ro or a secret provides it: a file
            # the container user can read (docs/DEPLOY.md).
            _, data = new_tokens()
            secrets = {settings["token_file"]: data}
        for path, data in secrets.items():
            files[path] = File(data, 0o400, uid, gid)
        admin_file.write_bytes(secrets[settings["token_file"]])
        token_file = admin_file
    env = _env(runtime)
    (health,) = ins["HEALTHCHECK"]
    healthcheck = json.loads(health.partition(" CMD ")[2])
    dep = Deployment("Dockerfile", entrypoint + cmd, files, dirs, uid, gid, env,
                     ins.get("WORKDIR", ["/"])[-1])
    metrics = settings.get("metrics_address")
    return dep, Facts(_listen_address(settings, "listen"),
                      f"http://{_listen_address(settings, 'metrics_address')}/metrics" if metrics else None,
                      token_file, settings.get("state_dir"), healthcheck)


def compose_service(tmp: Path, name: str = "memnoded") -> tuple[Deployment, Facts, dict]:
    """The image as compose.yaml runs it; also returns the service."""
    compose = yaml.safe_load(COMPOSE.read_text())
    service = compose["services"][name]
    secrets = {}
    for s in service.get("secrets", []):
        sname = s if isinstance(s, str) else s["source"]
        target = f"/run/secrets/{sname}" if isinstance(s, str) else s.get("target", f"/run/secrets/{sname}")
        spec = compose["secrets"][sname]
        assert "file" in spec, f"secret {sname}: only file secrets are started here"
        _, data = new_tokens()
        secrets[target] = data
    dep, facts = docker_image(tmp, secrets)
    dep.name = f"compose.yaml service {name}"
    for key in ("entrypoint", "command", "user", "working_dir", "environment"):
        assert key not in service, f"compose.yaml sets {key}: this test runs the image's own"
    for v in service.get("volumes", []):
        source, target = v.split(":")[:2]
        if not source.startswith((".", "/")):
            # A named volume starts as a copy of the image's directory.
            assert target in dep.dirs, f"volume {source} at {target}: not a directory of the image"
    return dep, facts, service


# --- Kubernetes -------------------------------------------------------------------------

def k8s_pod(objs: list[dict], tmp: Path, secret_data: dict[str, dict[str, bytes]] | None = None
            ) -> tuple[Deployment, Facts]:
    """The StatefulSet's memnoded container. secret_data: Secret name -> key
    -> bytes (default: a token file for every key the config reads)."""
    (sts,) = [o for o in objs if o["kind"] == "StatefulSet"]
    pod = sts["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    psc = pod.get("securityContext", {})
    uid = c.get("securityContext", {}).get("runAsUser", psc.get("runAsUser", 0))
    gid = c.get("securityContext", {}).get("runAsGroup", psc.get("runAsGroup", 0))
    fs_group = psc.get("fsGroup")
    # The image's entrypoint (the Dockerfile's), then the container's args.
    runtime = parse_dockerfile(DOCKERFILE.read_text())[-1]
    entrypoint = c.get("command") or json.loads([a for i, a in runtime if i == "ENTRYPOINT"][-1])
    argv = entrypoint + c.get("args", [])
    volumes = {v["name"]: v for v in pod["volumes"]}
    configmaps = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ConfigMap"}
    files, dirs = _binaries(), {}
    group = fs_group if fs_group is not None else 0
    config_text = None
    mounts = {}
    for m in c["volumeMounts"]:
        v = volumes[m["name"]]
        base = m["mountPath"].rstrip("/")
        mounts[base] = v
        dirs[base] = Dir(0o755 if "emptyDir" not in v else 0o2777, 0, group)
        if "configMap" in v:
            data = configmaps[v["configMap"]["name"]]["data"]
            mode = v["configMap"].get("defaultMode", 0o644)
            for key, text in data.items():
                files[f"{base}/{key}"] = File(text.encode(), mode | (0o040 if fs_group is not None else 0),
                                             0, group)
                if key == "memnoded.conf":
                    config_text = text
    assert config_text is not None, "no memnoded.conf mounted from a ConfigMap"
    config_path = next(p for p in files if p.endswith("/memnoded.conf") and "/usr/" not in p)
    assert f"--config={config_path}" in argv
    settings = conf_settings(config_text)
    token_file = None
    for m in c["volumeMounts"]:
        v = volumes[m["name"]]
        if "secret" not in v:
            continue
        base = m["mountPath"].rstrip("/")
        name = v["secret"]["secretName"]
        data = (secret_data or {}).get(name)
        if data is None:
            # The Secret the docs tell the user to create: a token file under
            # the key the config reads.
            tf = settings.get("token_file", "")
            if not tf.startswith(base + "/"):
                assert v["secret"].get("optional"), f"Secret {name} is mounted but nothing reads it"
                continue
            _, tokens = new_tokens()
            data = {tf[len(base) + 1:]: tokens}
        mode = v["secret"].get("defaultMode", 0o644)
        for key, content in data.items():
            # The kubelet gives the files to fsGroup, group-readable.
            files[f"{base}/{key}"] = File(content, mode | (0o040 if fs_group is not None else 0), 0, group)
    if "token_file" in settings:
        assert settings["token_file"] in files, (
            f"token_file={settings['token_file']} is not in any mounted Secret")
        token_file = tmp / "k8s-tokens"
        token_file.write_bytes(files[settings["token_file"]].data)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert port_of(settings["listen"]) == ports["grpc"]
    metrics = None
    if settings.get("metrics_address"):
        ann = sts["spec"]["template"]["metadata"].get("annotations", {})
        metrics = (f"http://{_listen_address(settings, 'metrics_address')}"
                   f"{ann.get('prometheus.io/path', '/metrics')}")
    env = {**_env(runtime), **{e["name"]: e["value"] for e in c.get("env", [])}}
    workdir = c.get("workingDir") or [a for i, a in runtime if i == "WORKDIR"][-1]
    dep = Deployment(f"StatefulSet {sts['metadata']['name']}", argv, files, dirs, uid, gid, env, workdir)
    return dep, Facts(_listen_address(settings, "listen"), metrics, token_file, settings.get("state_dir"))


# --- systemd ------------------------------------------------------------------------------

def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value given (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


# The first uid systemd hands to DynamicUser= services.
DYNAMIC_UID = 61184


def systemd_service(tmp: Path) -> tuple[Deployment, Facts]:
    unit_text = UNIT.read_text()
    s = parse_unit(unit_text)["Service"]
    (exec_start,) = s["ExecStart"]
    argv = shlex.split(exec_start)
    # Where the unit's own install instructions put the config.
    m = re.search(r"install -D -m (\d+) deploy/systemd/memnoded.conf (\S+)", unit_text)
    assert m, "the unit's header no longer says where memnoded.conf goes"
    config_path = m.group(2)
    assert f"--config={config_path}" in argv
    files = {argv[0]: File((BUILD_DIR / "server" / "memnoded").read_bytes(), 0o755),
             config_path: File(UNIT_CONF.read_bytes(), int(m.group(1), 8))}
    uid = gid = DYNAMIC_UID if s.get("DynamicUser", ["no"])[-1] == "yes" else 0
    dirs = {}
    for d in s.get("StateDirectory", []):
        for name in d.split():
            dirs[f"/var/lib/{name}"] = Dir(int(s.get("StateDirectoryMode", ["0755"])[-1], 8), uid, gid)
    settings = conf_settings(UNIT_CONF.read_text())
    token_file = None
    for cred in s.get("LoadCredential", []):
        cid, _, _source = cred.partition(":")
        # systemd copies the source to $CREDENTIALS_DIRECTORY/<id>, owned by
        # the service's user, mode 0400.
        path = f"/run/credentials/{UNIT.name}/{cid}"
        _, data = new_tokens()
        files[path] = File(data, 0o400, uid, gid)
        if settings.get("token_file") == path:
            token_file = tmp / "systemd-tokens"
            token_file.write_bytes(data)
    if "token_file" in settings:
        assert token_file is not None, f"token_file={settings['token_file']} is no LoadCredential= of the unit"
    dep = Deployment("memnoded.service", argv, files, dirs, uid, gid, {},
                     s.get("WorkingDirectory", ["/"])[-1])
    metrics = settings.get("metrics_address")
    return dep, Facts(settings["listen"], f"http://{metrics}/metrics" if metrics else None, token_file,
                      settings.get("state_dir"))


# --- the check every shipped deployment passes ---------------------------------------------

def check_as_shipped(dep: Deployment, facts: Facts, stage: Path, secure: bool = True) -> dict:
    """Starts the deployment as shipped, probes it as its clients would,
    stops it with SIGTERM, starts it again on the same state. Returns the
    first probe's report."""
    with Deployed(dep, stage=stage) as d:
        report = d.probe(facts.grpc, facts.metrics, facts.token_file)
        assert report["health"] == {"code": "OK", "status": "SERVING"}, (dep.name, report)
        if secure:
            assert report["list_without_token"]["code"] == "UNAUTHENTICATED", (dep.name, report)
            assert report["list_with_token"] == {"code": "OK", "has_default_machine": True}, (
                dep.name, report)
        else:
            assert report["list_without_token"]["code"] == "OK", (dep.name, report)
        if facts.metrics:
            assert report["metrics"]["status"] == 200 and report["metrics"]["memnode_lines"] > 0, (
                dep.name, report)
        code, out = d.stop()
        assert code == 0, f"{dep.name}: exit {code} on SIGTERM:\n{out}"
        if facts.state_dir:
            assert f"machines saved to {facts.state_dir}" in out, out
            assert d.path(f"{facts.state_dir}/default.mnsnap").is_file(), out
    if facts.state_dir:
        with Deployed(dep, stage=stage) as d:
            assert any(l.startswith("memnoded: restored machines/default") for l in d.lines), d.lines
            again = d.probe(facts.grpc, None, facts.token_file)
            assert again["health"]["status"] == "SERVING"
            code, out = d.stop()
            assert code == 0, out
    return report
