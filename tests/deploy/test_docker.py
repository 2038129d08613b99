"""deploy/docker/Dockerfile: built the way the Makefile builds, with the
build dependencies only; runtime libraries that cover what the binaries
link; a non-root user; the baked config started as shipped (in its own
network and mount namespace, with the token secret where it reads it) and
probed; a HEALTHCHECK command that really tells a serving memnoded from a
stopped one. (The image itself is built and run by a real Docker engine in
container_e2e.py, `make test-container`.)"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

import pytest

from deploy_common import DEPLOY, REPO, memnodectl_binary, memnoded_binary
from deployed import Deployed
from shipped import (baked_config, check_as_shipped, docker_image, parse_dockerfile,
                     run_commands)

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
MAKEFILE = REPO / "Makefile"


# --- parsing -----------------------------------------------------------------

def parse_makefile(text: str):
    """Variables (?=, :=, =) and rules (target -> recipe lines)."""
    variables, rules, current = {}, {}, None
    for line in text.splitlines():
        if line.startswith("\t") and current is not None:
            rules[current].append(line.strip())
            continue
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(\?=|:=|=)\s*(.*)$", line)
        if m:
            variables[m.group(1)] = m.group(3).strip()
            current = None
            continue
        m = re.match(r"^([^\s:#=][^:=]*):(?!=)", line)
        if m:
            current = m.group(1).strip()
            rules[current] = []
        elif not line.strip() or line.startswith("#"):
            current = None if not line.strip() else current
    return variables, rules


def expand(command: str, variables: dict, keep: set[str]) -> list[str]:
    """Makefile variables expanded; those in `keep` become <NAME>."""
    def sub(m):
        name = m.group(1)
        return f"<{name}>" if name in keep else expand_str(variables.get(name, ""), variables, keep)

    def expand_str(s, variables, keep):
        return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, s)

    return shlex.split(expand_str(command.lstrip("@"), variables, keep))


@pytest.fixture(scope="module")
def stages():
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def make():
    return parse_makefile(MAKEFILE.read_text())


def runs(stage):
    return [cmd for ins, args in stage if ins == "RUN" for cmd in run_commands(args)]


# --- build steps ---------------------------------------------------------------

def test_two_stages_on_bookworm(stages):
    assert len(stages) == 2
    builder, runtime = stages
    assert re.fullmatch(r"debian:bookworm(@\S+)? AS builder", builder[0][1], re.I)
    assert re.fullmatch(r"debian:bookworm-slim(@\S+)?( AS \w+)?", runtime[0][1], re.I)


def deps_set(name: str) -> list[str]:
    r = subprocess.run([str(REPO / "scripts" / "deps.sh"), "--list", name], capture_output=True,
                       text=True, check=True)
    return r.stdout.split()


def test_builder_installs_the_build_set_only(stages, make):
    variables, rules = make
    (deps_cmd,) = rules["deps-build"]
    deps = expand(deps_cmd, variables, set())
    assert deps == ["scripts/deps.sh", "build"]
    builder = stages[0]
    cmds = runs(builder)
    assert deps in cmds, f"the builder stage must run {deps} (as `make build` does)"
    first_run = next(i for i, (ins, a) in enumerate(builder) if ins == "RUN" and "scripts/deps.sh" in a)
    assert any("scripts/deps.sh" in a for ins, a in builder[:first_run] if ins == "COPY")
    # No package list of its own: every apt-get install comes from deps.sh.
    assert not [c for c in cmds if c[:1] == ["apt-get"] and "install" in c]
    # The build set is what compiling needs, not the test toolchain.
    build = set(deps_set("build"))
    assert {"cmake", "libgrpc++-dev", "prometheus-cpp-dev"} <= build
    assert not build & {"nodejs", "npm", "prometheus", "python3-matplotlib", "python3-pytest",
                        "clang", "openssl", "docker.io"}, sorted(build)


def test_builder_configures_and_builds_like_the_makefile(stages, make):
    variables, rules = make
    (configure,) = rules["$(BUILD_DIR)/build.ninja"]
    build = [c for c in rules["build"] if c.startswith("cmake --build")]
    assert len(build) == 1
    build_dir = variables["BUILD_DIR"]
    m_configure = expand(configure, variables, {"CMAKE_FLAGS"})
    m_build = expand(build[0], variables, {"JOBS"})
    assert variables["JOBS"] == "$(shell nproc)"

    builder = stages[0]
    assert any(i == "ARG" and a.split("=")[0] == "CMAKE_FLAGS" for i, a in builder)

    def normalize(words):
        out = []
        for w in words:
            w = {"$CMAKE_FLAGS": "<CMAKE_FLAGS>", "${CMAKE_FLAGS}": "<CMAKE_FLAGS>",
                 "$(nproc)": "<JOBS>"}.get(w, w)
            out.append(w)
        return out

    cmds = [normalize(c) for c in runs(builder)]
    assert m_configure in cmds, f"Makefile configures with {m_configure}; Dockerfile runs {cmds}"
    d_build = [c for c in cmds if c[:2] == ["cmake", "--build"]]
    assert len(d_build) == 1
    assert d_build[0][:len(m_build)] == m_build, f"{d_build[0]} vs {m_build}"
    extra = d_build[0][len(m_build):]
    assert extra[:1] == ["--target"] and {"memnoded", "memnodectl"} <= set(extra[1:])
    # The binaries shipped come from the Makefile's build dir.
    text = " ".join(a for _, a in builder)
    assert f"{build_dir}/server/memnoded" in text
    assert f"{build_dir}/client/cpp/memnodectl" in text


# --- runtime stage -----------------------------------------------------------------

def runtime_packages(stage):
    """The packages the runtime stage installs: `deps.sh run`, nothing else."""
    cmds = runs(stage)
    assert not [c for c in cmds if c[:1] == ["apt-get"] and "install" in c]
    (deps,) = [c for c in cmds if c and c[0].endswith("deps.sh")]
    assert deps[1:] == ["run"], deps
    return deps_set("run")


def test_runtime_stage(stages):
    runtime = stages[1]
    ins = {}
    for i, a in runtime:
        ins.setdefault(i, []).append(a)
    (user,) = ins["USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root USER (runAsNonRoot can check it)"
    assert "10001" in " ".join(ins["RUN"]), "the user the Kubernetes securityContext runs as"
    assert sorted(" ".join(ins["EXPOSE"]).split()) == ["50051", "9464"]
    assert ins["STOPSIGNAL"] == ["SIGTERM"]
    assert json.loads(ins["ENTRYPOINT"][0]) == ["/usr/local/bin/memnoded"]
    assert json.loads(ins["CMD"][0]) == ["--config=/etc/memnode/memnoded.conf"]
    assert any("--from=builder" in a for a in ins["COPY"])
    pkgs = runtime_packages(runtime)
    assert pkgs and not [p for p in pkgs if p.endswith("-dev") or p in ("build-essential", "cmake")]


def test_baked_config_as_shipped(stages, tmp_path):
    """memnoded started with exactly the image's entrypoint, command and
    config, as its user, with the token secret where the config reads it,
    in its own network namespace: serves health, refuses RPCs without the
    token, serves them with it, serves /metrics on the container address,
    saves to its state directory at SIGTERM and restores at the next start."""
    settings = dict(l.split("=", 1) for l in baked_config(stages[1]).splitlines()
                    if l and not l.startswith("#"))
    assert settings["listen"] == "0.0.0.0:50051", "Docker forwards published ports to the container address"
    assert settings["token_file"].startswith("/run/secrets/"), "Docker secrets live in /run/secrets"
    dep, facts = docker_image(tmp_path)
    (tmp_path / "stage").mkdir()
    check_as_shipped(dep, facts, tmp_path / "stage")


def test_baked_config_refuses_to_start_without_its_secret(tmp_path):
    """Forgetting the token secret stops memnoded at start (exit 2)."""
    dep, _ = docker_image(tmp_path)
    token_path = next(p for p in dep.files if p.startswith("/run/secrets/"))
    del dep.files[token_path]
    with pytest.raises(AssertionError, match=r"exit 2\)[\s\S]*--token_file"):
        Deployed(dep, stage=tmp_path)


def dpkg_owners(paths: set[str]) -> set[str]:
    """Debian packages owning the given files (/lib and /usr/lib both tried)."""
    variants = {p: {p, re.sub(r"^/usr/lib/", "/lib/", p), re.sub(r"^/lib/", "/usr/lib/", p)} for p in paths}
    everything = sorted(set().union(*variants.values()))
    r = subprocess.run(["dpkg-query", "-S", *everything], capture_output=True, text=True)
    owner = {}
    for line in r.stdout.splitlines():
        pkgs, _, path = line.rpartition(": ")
        owner[path] = pkgs.split(",")[0].split(":")[0].strip()
    found = set()
    for p, vs in variants.items():
        hits = [owner[v] for v in vs if v in owner]
        assert hits, f"no Debian package owns {p}"
        found.add(hits[0])
    return found


def dependency_closure(pkgs: list[str]) -> set[str]:
    """The packages and everything they depend on, from dpkg's status."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Provides}\t${Depends},${Pre-Depends}\n"],
                         capture_output=True, text=True, check=True).stdout
    depends: dict[str, list[str]] = {}

    def names(field):
        return [a.split("|")[0].split("(")[0].split(":")[0].strip() for a in field.split(",")]

    for line in out.splitlines():
        pkg, provides, deps = line.split("\t")
        depends.setdefault(pkg, []).extend(n for n in names(deps) if n)
        for virtual in names(provides):
            if virtual:
                depends.setdefault(virtual, []).append(pkg)
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        assert p in depends, f"{p} is not installed here"
        seen.add(p)
        todo.extend(depends[p])
    return seen


def test_runtime_packages_cover_the_binaries(stages):
    binaries = [memnoded_binary(), memnodectl_binary()]
    libs = set()
    for b in binaries:
        out = subprocess.run(["ldd", str(b)], capture_output=True, text=True, check=True).stdout
        libs |= {os.path.realpath(m) for m in re.findall(r"=> (/\S+)", out)}
    needed = dpkg_owners(libs)
    pkgs = runtime_packages(stages[1])
    closure = dependency_closure(pkgs)
    # debian:bookworm-slim has the essential C/C++ runtime already.
    missing = needed - closure - {"libc6", "libgcc-s1", "libstdc++6"}
    assert not missing, f"runtime stage lacks {sorted(missing)} (installs {pkgs})"
    assert {"libgrpc++1.51", "libprometheus-cpp-pull1.0"} <= needed


# --- health check --------------------------------------------------------------

def healthcheck_command(stage) -> list[str]:
    (args,) = [a for i, a in stage if i == "HEALTHCHECK"]
    options, _, cmd = args.partition(" CMD ")
    assert re.search(r"--interval=\S+", options) and re.search(r"--timeout=\S+", options)
    return json.loads(cmd)


def test_healthcheck_tells_serving_from_stopped(stages, tmp_path):
    """The HEALTHCHECK command, run as Docker runs it (inside the container's
    network namespace, with the image's environment), exits 0 while
    memnoded serves and 1 once it has stopped."""
    cmd = healthcheck_command(stages[1])
    assert "memnodectl" in " ".join(cmd)
    env_lines = [a for i, a in stages[1] if i == "ENV" and a.startswith("MEMNODE_SERVER=")]
    assert env_lines and env_lines[0].split()[0] == "MEMNODE_SERVER=127.0.0.1:50051"
    dep, facts = docker_image(tmp_path)
    with Deployed(dep, stage=tmp_path) as d:
        r = d.exec_inside(*cmd)
        assert r.returncode == 0, f"healthy server reported unhealthy: {r.stdout}{r.stderr}"
        code, out = d.stop()
        assert code == 0, out
        # No container to enter once memnoded has exited: the same command
        # and environment in its network namespace, with the build's
        # memnodectl.
        env = dict(os.environ, PATH=f"{memnodectl_binary().parent}:{os.environ['PATH']}", **dep.env)
        r = d.exec(*cmd, env=env)
        assert r.returncode == 1, f"stopped server: exit {r.returncode} (Docker wants 1): {r.stderr}"
