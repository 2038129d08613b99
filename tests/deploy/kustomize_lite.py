"""A small kustomize renderer for the subset deploy/k8s uses.

kubectl and kustomize are not Debian 12 packages, so tests/deploy renders the
kustomizations itself. Supported, with kustomize's semantics for what
deploy/k8s needs:

- ``resources``: files (multi-document YAML) and directories (kustomizations);
- ``components``: directories holding a ``kind: Component`` kustomization;
- ``patches``: ``path:`` strategic-merge patches, the target taken from the
  patch's own apiVersion/kind/metadata.name (lists of objects that all have a
  ``name`` merge by name, as containers, volumes and ports do, the patch's
  items first as kustomize orders them; other lists
  are replaced);
- ``namespace``, ``namePrefix`` (with the name references memnode uses:
  StatefulSet.spec.serviceName and configMap volumes), ``replicas``, ``images``.

Anything else in a kustomization is an error, so that a new field cannot be
silently ignored by the tests. When a real kustomize is around (``kubectl
kustomize``), tests/deploy also compares its output with this one.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_KEYS = {
    "apiVersion", "kind", "resources", "components", "patches", "namespace",
    "namePrefix", "replicas", "images",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "PriorityClass"}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class KustomizeError(Exception):
    pass


def load_yaml_documents(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _kustomization_file(directory: Path) -> Path:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if (directory / name).is_file():
            return directory / name
    raise KustomizeError(f"{directory}: no kustomization.yaml")


def _load_kustomization(directory: Path, want_kind: str) -> dict:
    path = _kustomization_file(directory)
    docs = load_yaml_documents(path)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise KustomizeError(f"{path}: expected one YAML mapping")
    k = docs[0]
    kind = k.get("kind", "Kustomization")
    if kind != want_kind:
        raise KustomizeError(f"{path}: kind {kind}, expected {want_kind}")
    unknown = set(k) - KUSTOMIZATION_KEYS
    if unknown:
        raise KustomizeError(f"{path}: fields this renderer does not implement: {sorted(unknown)}")
    return k


def strategic_merge(base: Any, patch: Any) -> Any:
    """Strategic merge patch for the shapes deploy/k8s uses."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if (isinstance(base, list) and isinstance(patch, list) and base and patch
            and all(isinstance(x, dict) and "name" in x for x in base + patch)):
        # kustomize's order: the patch's items first, in the patch's order
        # (each merged into the base item of its name, if any), then the
        # base items the patch does not name, in their order.
        by_name = {x["name"]: x for x in base}
        out = [strategic_merge(by_name[x["name"]], x) if x["name"] in by_name else copy.deepcopy(x)
               for x in patch]
        named = {x["name"] for x in patch}
        return out + [copy.deepcopy(x) for x in base if x["name"] not in named]
    return copy.deepcopy(patch)


def _pod_spec(obj: dict) -> dict | None:
    if obj.get("kind") in POD_TEMPLATE_KINDS:
        return obj.get("spec", {}).get("template", {}).get("spec")
    if obj.get("kind") == "Pod":
        return obj.get("spec")
    return None


def _split_image(image: str) -> tuple[str, str | None, str | None]:
    """name, tag, digest of an image reference (a registry port is not a tag)."""
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    tag = None
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        image, tag = image[:colon], image[colon + 1:]
    return image, tag, digest


def _apply_images(resources: list[dict], images: list[dict]) -> None:
    for obj in resources:
        spec = _pod_spec(obj)
        if not spec:
            continue
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            name, tag, digest = _split_image(c["image"])
            for rule in images:
                if rule["name"] != name:
                    continue
                new_name = rule.get("newName", name)
                if "digest" in rule:
                    c["image"] = f"{new_name}@{rule['digest']}"
                elif "newTag" in rule:
                    c["image"] = f"{new_name}:{rule['newTag']}"
                else:
                    c["image"] = new_name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
                break


def _find(resources: list[dict], kind: str, name: str, origin: str) -> dict:
    matches = [r for r in resources if r.get("kind") == kind and r["metadata"].get("name") == name]
    if len(matches) != 1:
        raise KustomizeError(f"{origin}: {len(matches)} resources match {kind}/{name}")
    return matches[0]


def _apply_kustomization(directory: Path, k: dict, resources: list[dict]) -> list[dict]:
    for entry in k.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            resources.extend(build(path))
        elif path.is_file():
            resources.extend(load_yaml_documents(path))
        else:
            raise KustomizeError(f"{directory}: resource {entry} does not exist")
    for entry in k.get("components", []):
        path = (directory / entry).resolve()
        resources = _apply_kustomization(path, _load_kustomization(path, "Component"), resources)

    for p in k.get("patches", []):
        if set(p) != {"path"}:
            raise KustomizeError(f"{directory}: only `patches: - path: FILE` is implemented, got {p}")
        for doc in load_yaml_documents(directory / p["path"]):
            target = _find(resources, doc["kind"], doc["metadata"]["name"], f"{directory}/{p['path']}")
            if target.get("apiVersion") != doc.get("apiVersion"):
                raise KustomizeError(f"{directory}/{p['path']}: apiVersion differs from the target's")
            merged = strategic_merge(target, doc)
            target.clear()
            target.update(merged)

    if "namespace" in k:
        for obj in resources:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = k["namespace"]

    prefix = k.get("namePrefix", "")
    if prefix:
        renamed = {}
        for obj in resources:
            if obj["kind"] == "Namespace":
                continue
            old = obj["metadata"]["name"]
            obj["metadata"]["name"] = prefix + old
            renamed[(obj["kind"], old)] = prefix + old
        for obj in resources:
            if obj["kind"] == "StatefulSet" and "serviceName" in obj["spec"]:
                obj["spec"]["serviceName"] = renamed.get(("Service", obj["spec"]["serviceName"]),
                                                         obj["spec"]["serviceName"])
            spec = _pod_spec(obj)
            for v in (spec or {}).get("volumes", []):
                if "configMap" in v:
                    v["configMap"]["name"] = renamed.get(("ConfigMap", v["configMap"]["name"]),
                                                         v["configMap"]["name"])

    for rule in k.get("replicas", []):
        hits = [r for r in resources if r["kind"] in POD_TEMPLATE_KINDS
                and r["metadata"]["name"] in (rule["name"], prefix + rule["name"])]
        if not hits:
            raise KustomizeError(f"{directory}: replicas: nothing named {rule['name']}")
        for r in hits:
            r["spec"]["replicas"] = rule["count"]

    if "images" in k:
        _apply_images(resources, k["images"])
    return resources


def build(directory: Path | str) -> list[dict]:
    """Renders the kustomization in ``directory``; returns its objects."""
    directory = Path(directory).resolve()
    return _apply_kustomization(directory, _load_kustomization(directory, "Kustomization"), [])


def identity(obj: dict) -> tuple[str, str, str, str]:
    m = obj.get("metadata", {})
    return (obj.get("apiVersion", ""), obj.get("kind", ""), m.get("namespace", ""), m.get("name", ""))
