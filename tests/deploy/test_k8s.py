"""deploy/k8s: kustomize rendering, Kubernetes schema validation, the
properties the deployment relies on (probes, security, ports, names,
authentication), and each rendering's memnoded container started as shipped
(its args, its ConfigMap, the token Secret and volumes where it mounts them,
its user, in its own network namespace) and probed as the kubelet and
clients reach it."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess

import pytest
import yaml

from deploy_common import DEPLOY, NODE_DIR, REPO, node_modules  # noqa: F401 (fixture)
from shipped import check_as_shipped, k8s_pod
import kustomize_lite

K8S = DEPLOY / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "example"
INSECURE = K8S / "overlays" / "insecure-local-only"
COMPONENT = K8S / "components" / "servicemonitor"


def by_kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def one(objs, kind, name=None):
    hits = [o for o in by_kind(objs, kind) if name is None or o["metadata"]["name"] == name]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in hits]}"
    return hits[0]


def conf(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


@pytest.fixture(scope="module")
def base():
    return kustomize_lite.build(BASE)


@pytest.fixture(scope="module")
def overlay():
    return kustomize_lite.build(OVERLAY)


@pytest.fixture(scope="module")
def insecure():
    return kustomize_lite.build(INSECURE)


def check_deployment(objs):
    """Invariants that hold for the base and every overlay."""
    sts = one(objs, "StatefulSet")
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()

    services = {s["metadata"]["name"]: s for s in by_kind(objs, "Service")}
    assert len(services) == 2, "a headless Service and a client Service"
    headless = services[spec["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    client = [s for n, s in services.items() if n != spec["serviceName"]][0]
    assert client["spec"].get("clusterIP") != "None"
    for s in services.values():
        assert s["spec"]["selector"].items() <= labels.items(), s["metadata"]["name"]

    (c,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"grpc": 50051, "metrics": 9464}
    for s in services.values():
        for p in s["spec"]["ports"]:
            assert p["targetPort"] in ports, f"{s['metadata']['name']}: targetPort {p['targetPort']}"

    # Native gRPC probes on the gRPC port (grpc.health.v1).
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"]["port"] == ports["grpc"], probe
    assert "service" not in c["livenessProbe"]["grpc"], "overall health (service \"\")"

    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind]), kind

    psc, csc = pod["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"]["drop"] == ["ALL"] and "add" not in csc["capabilities"]
    assert pod["automountServiceAccountToken"] is False

    ann = spec["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true"
    assert int(ann["prometheus.io/port"]) == ports["metrics"]
    assert ann["prometheus.io/path"] == "/metrics"

    # The config file: mounted from the ConfigMap, named by --config, and
    # listening where the probes, Services and annotations expect.
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    cm_volume = [n for n, v in volumes.items() if "configMap" in v]
    assert len(cm_volume) == 1
    cm = one(objs, "ConfigMap", volumes[cm_volume[0]]["configMap"]["name"])
    config_path = mounts[cm_volume[0]]["mountPath"] + "/memnoded.conf"
    assert f"--config={config_path}" in c["args"]
    settings = conf(cm["data"]["memnoded.conf"])
    assert settings["listen"] == f"0.0.0.0:{ports['grpc']}", "probes reach the pod IP"
    assert settings["metrics_address"] == f"0.0.0.0:{ports['metrics']}"
    assert settings["state_dir"] in {m["mountPath"] for m in c["volumeMounts"]}, "state on the state volume"
    # Writable paths with a read-only root: state and /tmp.
    assert {"/var/lib/memnode", "/tmp"} <= {m["mountPath"] for m in c["volumeMounts"]}
    for m in c["volumeMounts"]:
        assert m["name"] in volumes
    return sts, c, settings


def check_tokens_from_secret(objs, settings):
    """The config reads its tokens from a mounted Secret, never a ConfigMap."""
    sts = one(objs, "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    token_file = settings["token_file"]
    (mount,) = [m for m in c["volumeMounts"] if token_file.startswith(m["mountPath"].rstrip("/") + "/")]
    secret = volumes[mount["name"]]["secret"]
    assert mount.get("readOnly") is True
    assert not secret.get("optional"), "a secure deployment must not start without its tokens"
    assert secret["defaultMode"] & 0o007 == 0, "tokens unreadable by others"
    assert "allow_insecure_remote" not in settings
    assert not by_kind(objs, "Secret"), "tokens are never committed: the Secret is made by the user"
    # docs/DEPLOY.md tells how to make that Secret with that key.
    key = token_file[len(mount["mountPath"].rstrip("/")) + 1:]
    docs = (REPO / "docs" / "DEPLOY.md").read_text()
    assert f"create secret generic {secret['secretName']}" in docs
    assert f"--from-file={key}=" in docs


def test_base_renders(base):
    assert sorted((o["kind"], o["metadata"]["name"]) for o in base) == [
        ("ConfigMap", "memnoded-config"), ("Service", "memnoded"), ("Service", "memnoded-headless"),
        ("StatefulSet", "memnoded")]
    sts, c, settings = check_deployment(base)
    assert c["image"] == "memnode/memnoded:0.1.0"
    assert sts["spec"]["replicas"] == 1
    assert settings["listen"].endswith(":50051")
    check_tokens_from_secret(base, settings)


def test_overlay_renders(base, overlay):
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in overlay)
    assert kinds == [("ConfigMap", "example-memnoded-config"), ("Service", "example-memnoded"),
                     ("Service", "example-memnoded-headless"), ("ServiceMonitor", "example-memnoded"),
                     ("StatefulSet", "example-memnoded")]
    assert {o["metadata"]["namespace"] for o in overlay} == {"memnode-example"}
    sts, c, settings = check_deployment(overlay)
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["serviceName"] == "example-memnoded-headless"
    assert c["image"] == "registry.example.com/memnode/memnoded:0.1.0"
    check_tokens_from_secret(overlay, settings)

    _, base_c, base_settings = check_deployment(base)

    def size(s):
        return int(s["nodes"]) * int(s["blocks_per_node"]) * int(s["pages_per_block"]) * 4096

    assert size(settings) > size(base_settings), "bigger default machine"
    assert size(settings) <= int(settings["max_machine_bytes"]) <= int(settings["max_total_bytes"])

    def mem(q):
        units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
        return int(q[:-2]) * units[q[-2:]]

    assert mem(c["resources"]["limits"]["memory"]) > mem(base_c["resources"]["limits"]["memory"])
    # The strategic merge kept everything the patch did not mention.
    assert c["securityContext"] == base_c["securityContext"]
    assert c["readinessProbe"] == base_c["readinessProbe"]

    # ServiceMonitor: selects exactly the headless Service, on a port it has.
    sm = one(overlay, "ServiceMonitor")
    selected = [s for s in by_kind(overlay, "Service")
                if sm["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in selected] == [sts["spec"]["serviceName"]]
    port_names = {p["name"] for p in selected[0]["spec"]["ports"]}
    for ep in sm["spec"]["endpoints"]:
        assert ep["port"] in port_names
        assert ep["path"] == "/metrics"


def test_insecure_overlay_is_marked_and_only_drops_authentication(base, insecure):
    assert "insecure" in INSECURE.name and "local" in INSECURE.name
    k = (INSECURE / "kustomization.yaml").read_text()
    assert k.startswith("# INSECURE"), "says so on its first line"
    sts, c, settings = check_deployment(insecure)
    assert settings["allow_insecure_remote"] == "true" and "token_file" not in settings
    assert {o["metadata"]["namespace"] for o in insecure} == {"memnode-insecure"}
    _, base_c, base_settings = check_deployment(base)
    # Everything but authentication is the base's.
    assert c == base_c
    assert {k: v for k, v in settings.items() if k != "allow_insecure_remote"} == {
        k: v for k, v in base_settings.items() if k not in ("token_file", "max_request_bytes",
                                                             "max_streams", "event_buffer")}


def test_base_has_no_servicemonitor(base):
    assert not by_kind(base, "ServiceMonitor"), "the ServiceMonitor is an optional component"
    k = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert k["kind"] == "Component"


def test_renderer_rejects_what_it_does_not_implement(tmp_path):
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources: [%s]\ncommonLabels: {a: b}\n" % (BASE / "service.yaml"))
    with pytest.raises(kustomize_lite.KustomizeError, match="commonLabels"):
        kustomize_lite.build(tmp_path)


def real_kustomize():
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        r = subprocess.run(["kubectl", "kustomize", "--help"], capture_output=True, text=True)
        if r.returncode == 0:
            return ["kubectl", "kustomize"]
    return None


@pytest.mark.parametrize("directory", [BASE, OVERLAY, INSECURE], ids=["base", "overlay", "insecure"])
def test_same_as_real_kustomize(directory):
    cmd = real_kustomize()
    assert cmd is not None, ("needs kustomize, or kubectl >= 1.21 (`kubectl kustomize`), on PATH to "
                             "check kustomize_lite against the real renderer; neither is a Debian 12 "
                             "package (Debian's kubernetes-client 1.20 is too old): install one")
    r = subprocess.run([*cmd, str(directory)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    theirs = {kustomize_lite.identity(o): o for o in yaml.safe_load_all(r.stdout) if o}
    ours = {kustomize_lite.identity(o): o for o in kustomize_lite.build(directory)}
    assert sorted(theirs) == sorted(ours)
    for key in ours:
        assert ours[key] == theirs[key], key


def validate(objects: list[tuple[str, dict]]):
    payload = json.dumps([{"source": s, "object": o} for s, o in objects])
    r = subprocess.run(["node", str(NODE_DIR / "validate.mjs")], input=payload, capture_output=True,
                       text=True, cwd=NODE_DIR, timeout=120)
    assert r.returncode in (0, 1), f"validate.mjs failed (exit {r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r.returncode, json.loads(r.stdout)


def manifests_to_validate():
    objs = []
    for d in (BASE, COMPONENT):
        k = yaml.safe_load((d / "kustomization.yaml").read_text())
        for f in k["resources"]:
            for o in kustomize_lite.load_yaml_documents(d / f):
                objs.append((str((d / f).relative_to(DEPLOY.parent)), o))
    for name, d in (("base", BASE), ("overlays/example", OVERLAY),
                    ("overlays/insecure-local-only", INSECURE)):
        for o in kustomize_lite.build(d):
            objs.append((f"kustomize build deploy/k8s/{name}", o))
    return objs


def test_manifests_match_kubernetes_schemas(node_modules):
    objs = manifests_to_validate()
    assert len(objs) >= 18
    rc, results = validate(objs)
    bad = [r for r in results if not r["ok"]]
    assert rc == 0 and not bad, json.dumps(bad, indent=1)
    assert {r["kind"] for r in results} == {"ConfigMap", "Service", "StatefulSet", "ServiceMonitor"}


def test_schema_validation_catches_mistakes(node_modules):
    sts = one(kustomize_lite.build(BASE), "StatefulSet")
    wrong_type = copy.deepcopy(sts)
    wrong_type["spec"]["replicas"] = "three"
    wrong_probe = copy.deepcopy(sts)
    wrong_probe["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["grpc"] = {"service": "x"}
    rc, results = validate([("replicas", wrong_type), ("probe", wrong_probe)])
    assert rc == 1
    assert [r["ok"] for r in results] == [False, False], results
    assert any("/spec/replicas" in e for e in results[0]["errors"])
    assert any("port" in e for e in results[1]["errors"])


@pytest.mark.parametrize("directory", [BASE, OVERLAY, INSECURE], ids=["base", "overlay", "insecure"])
def test_pod_as_shipped(directory, tmp_path):
    """The rendered StatefulSet's container started as the kubelet would:
    the image's entrypoint with the container's args, the ConfigMap, the
    token Secret (made as docs/DEPLOY.md says) and the emptyDirs mounted at
    their mountPaths with the kubelet's modes and fsGroup, as runAsUser; in
    its own network namespace, probed on the pod address: gRPC health (the
    probes), RPCs without and with a token, /metrics on the annotated port;
    SIGTERM saves to the state volume, the next start restores."""
    objs = kustomize_lite.build(directory)
    dep, facts = k8s_pod(objs, tmp_path)
    sts = one(objs, "StatefulSet")
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    assert facts.grpc.endswith(f":{c['readinessProbe']['grpc']['port']}")
    (tmp_path / "stage").mkdir()
    check_as_shipped(dep, facts, tmp_path / "stage", secure=directory != INSECURE)
