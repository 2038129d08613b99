"""deploy/systemd: the unit's hardening, `systemd-analyze verify` and
`security`, and the unit with its config and token credential started as
shipped: serving on loopback only, with authentication, keeping state."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from deploy_common import DEPLOY
from deployed import POD_ADDRESS, Deployed
from shipped import check_as_shipped, parse_unit, systemd_service

UNIT = DEPLOY / "systemd" / "memnoded.service"
CONF = DEPLOY / "systemd" / "memnoded.conf"
EXEC = "/usr/local/bin/memnoded"


@pytest.fixture(scope="module")
def unit():
    return parse_unit(UNIT.read_text())


def test_hardening(unit):
    s = {k: v[-1] for k, v in unit["Service"].items()}
    required = {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "MemoryDenyWriteExecute": "yes",
        "CapabilityBoundingSet": "", "LockPersonality": "yes", "RestrictNamespaces": "yes",
        "Restart": "on-failure", "KillSignal": "SIGTERM", "StateDirectory": "memnode",
    }
    for key, value in required.items():
        assert s.get(key) == value, f"{key}={s.get(key)!r}, expected {value!r}"
    assert "@system-service" in unit["Service"]["SystemCallFilter"]
    assert s.get("DynamicUser") == "yes" or s.get("User") == "memnode"
    assert s["ExecStart"] == f"{EXEC} --config=/etc/memnode/memnoded.conf"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def systemd_analyze():
    path = shutil.which("systemd-analyze")
    assert path, "systemd-analyze not found: Debian package systemd (scripts/deps.sh test installs it)"
    return path


@pytest.fixture()
def unit_copy(tmp_path):
    """The unit with ExecStart pointing at an executable that exists here."""
    fake = tmp_path / "memnoded"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    text = UNIT.read_text()
    assert EXEC in text
    copy = tmp_path / "memnoded.service"
    copy.write_text(text.replace(EXEC, str(fake)))
    return copy


def test_systemd_analyze_verify(unit_copy):
    r = subprocess.run([systemd_analyze(), "verify", str(unit_copy)], capture_output=True, text=True,
                       timeout=120)
    # Unknown or misspelt keys are only warnings ("Unknown key ..., ignoring"):
    # any message about this unit fails the test.
    ours = [l for l in (r.stdout + r.stderr).splitlines() if "memnoded.service" in l]
    assert r.returncode == 0 and not ours, f"exit {r.returncode}:\n{r.stdout}{r.stderr}"


def test_systemd_analyze_verify_catches_mistakes(unit_copy):
    text = unit_copy.read_text().replace("ProtectHome=yes", "ProtectHomes=yes")
    unit_copy.write_text(text)
    r = subprocess.run([systemd_analyze(), "verify", str(unit_copy)], capture_output=True, text=True,
                       timeout=120)
    assert "ProtectHomes" in r.stderr


def test_systemd_analyze_security(unit_copy):
    # Exposure on systemd's 0-10 scale, "OK" up to 3.9; ours must stay <= 2.0.
    r = subprocess.run([systemd_analyze(), "security", "--offline=true", "--threshold=20",
                        "--no-pager", str(unit_copy)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"exposure above 2.0:\n{r.stdout[-3000:]}{r.stderr}"


def test_unit_as_shipped(tmp_path):
    """The unit's ExecStart with its config installed where the unit says,
    the LoadCredential= token file where systemd puts it, StateDirectory=,
    as the dynamic user: serves with authentication, saves its machines at
    SIGTERM (KillSignal) and restores them."""
    dep, facts = systemd_service(tmp_path)
    assert facts.grpc.startswith("127.0.0.1:") and facts.metrics.startswith("http://127.0.0.1:")
    (tmp_path / "stage").mkdir()
    check_as_shipped(dep, facts, tmp_path / "stage")


def test_unit_serves_loopback_only(tmp_path):
    """Nothing answers on the host's other addresses."""
    dep, facts = systemd_service(tmp_path)
    port = facts.grpc.rsplit(":", 1)[1]
    with Deployed(dep, stage=tmp_path) as d:
        report = d.probe(f"{POD_ADDRESS}:{port}")
        assert report["health"]["code"] == "UNAVAILABLE", report
        assert d.probe(facts.grpc)["health"]["status"] == "SERVING"
