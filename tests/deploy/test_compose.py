"""deploy/docker/compose.yaml: parses, publishes only on 127.0.0.1, mounts
files that exist and agree with each other (Prometheus scrape target, rules,
Grafana datasource and dashboard provider), keeps its secret out of git and
the image, and its memnoded service starts as shipped and serves."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy_common import DEPLOY, REPO
from deployed import port_of
from shipped import check_as_shipped, compose_service

COMPOSE = DEPLOY / "docker" / "compose.yaml"
HERE = COMPOSE.parent


@pytest.fixture(scope="module")
def compose():
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict)
    return doc


def bind_mounts(service: dict) -> list[tuple[Path, str]]:
    """(host path, container path) of every bind mount of a service."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, dict):
            if v.get("type") == "bind":
                out.append(((HERE / v["source"]).resolve(), v["target"]))
            continue
        source, target = v.split(":")[:2]
        if source.startswith((".", "/")):
            out.append(((HERE / source).resolve(), target))
    return out


def test_services(compose):
    assert set(compose["services"]) == {"memnoded", "prometheus", "grafana"}
    build = compose["services"]["memnoded"]["build"]
    assert (HERE / build["context"]).resolve() == REPO
    assert (HERE / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "docker" / "Dockerfile"


def test_ports_bound_to_loopback(compose):
    published = []
    for name, s in compose["services"].items():
        for p in s.get("ports", []):
            if isinstance(p, dict):
                assert p.get("host_ip") == "127.0.0.1", f"{name}: {p}"
                published.append(int(p["published"]))
            else:
                parts = str(p).split(":")
                assert len(parts) == 3 and parts[0] == "127.0.0.1", f"{name}: {p!r} is not bound to 127.0.0.1"
                published.append(int(parts[1]))
        mode = s.get("network_mode", "")
        if mode.startswith("service:"):
            assert mode.split(":", 1)[1] in compose["services"], f"{name}: {mode}"
            assert not s.get("ports"), f"{name}: a service in another's network namespace cannot publish"
        assert mode != "host", f"{name}: host networking bypasses the loopback-only ports"
    assert sorted(published) == [3000, 9090, 9464, 50051]


def test_mounted_files_exist(compose):
    missing = []
    for name, s in compose["services"].items():
        for host, _ in bind_mounts(s):
            if not host.exists():
                missing.append(f"{name}: {host.relative_to(REPO)}")
    assert not missing, ("compose.yaml mounts files that are not in the repository (the Prometheus "
                         "config and rules and the Grafana provisioning are written in deploy/prometheus "
                         "and deploy/grafana): " + ", ".join(missing))
    for name, s in compose["services"].items():
        for v in s.get("volumes", []):
            source = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
            if not source.startswith((".", "/")):
                assert source in compose.get("volumes", {}), f"{name}: undeclared volume {source}"


def flag(args: list[str], name: str) -> str:
    for a in args:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    raise AssertionError(f"no --{name} in {args}")


def test_prometheus_config_matches_memnoded(compose):
    prom = compose["services"]["prometheus"]
    assert prom["network_mode"] == "service:memnoded"
    mounts = {target: host for host, target in bind_mounts(prom)}
    config_path = flag(prom["command"], "config.file")
    assert config_path in mounts, f"{config_path} is not mounted"
    config = yaml.safe_load(mounts[config_path].read_text())
    # rule_files are relative to the config file: each must be mounted beside it.
    for rule in config.get("rule_files", []):
        target = str(Path(config_path).parent / rule)
        assert target in mounts, f"rule file {rule} is not mounted at {target}"
        groups = yaml.safe_load(mounts[target].read_text())["groups"]
        assert groups and all(g["rules"] for g in groups)
    targets = [t for sc in config["scrape_configs"] for st in sc.get("static_configs", [])
               for t in st["targets"]]
    # Shared network namespace: memnoded's metrics are on the same loopback.
    assert "127.0.0.1:9464" in targets
    assert any(str(p).endswith(":9464:9464") for p in compose["services"]["memnoded"]["ports"])


def test_grafana_provisioning_matches(compose):
    graf = compose["services"]["grafana"]
    assert graf["network_mode"] == "service:memnoded"
    mounts = {target: host for host, target in bind_mounts(graf)}
    ds_dir = mounts["/etc/grafana/provisioning/datasources"]
    db_dir = mounts["/etc/grafana/provisioning/dashboards"]
    datasources = [d for f in sorted(ds_dir.glob("*.y*ml")) for d in yaml.safe_load(f.read_text())["datasources"]]
    prom_listen = flag(compose["services"]["prometheus"]["command"], "web.listen-address")
    port = prom_listen.rsplit(":", 1)[1]
    assert any(d["type"] == "prometheus" and re.fullmatch(rf"http://127\.0\.0\.1:{port}/?", d["url"])
               for d in datasources), datasources
    providers = [p for f in sorted(db_dir.glob("*.y*ml")) for p in yaml.safe_load(f.read_text())["providers"]]
    for p in providers:
        path = p["options"]["path"]
        dashboards = [t for t in mounts if t == path or t.startswith(path.rstrip("/") + "/")]
        assert dashboards, f"dashboard provider path {path} has nothing mounted"
        for t in dashboards:
            assert mounts[t].is_dir() or mounts[t].suffix == ".json"


def test_memnoded_service_as_shipped(tmp_path):
    """The memnoded service as compose runs it: the image's entrypoint and
    config, compose's secrets at /run/secrets/<name> and its state volume,
    in its own network namespace; probed on the container ports that
    compose publishes."""
    dep, facts, service = compose_service(tmp_path)
    targets = {int(str(p).split(":")[-1]) for p in service["ports"]}
    assert port_of(facts.grpc) in targets and port_of(facts.metrics.split("/")[2]) in targets
    (tmp_path / "stage").mkdir()
    check_as_shipped(dep, facts, tmp_path / "stage")


def test_secret_files_stay_out_of_git_and_the_image(compose):
    """The token file compose reads is a local file: ignored by git and kept
    out of the image's build context."""
    ignored = (REPO / ".gitignore").read_text().split()
    docker_ignored = (REPO / ".dockerignore").read_text().split()
    for name, spec in compose["secrets"].items():
        path = str((HERE / spec["file"]).resolve().relative_to(REPO))
        assert path in ignored, f"{path} is not in .gitignore"
        assert path in docker_ignored, f"{path} is not in .dockerignore"
        r = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        assert r.returncode == 0, f"git does not ignore {path}"
