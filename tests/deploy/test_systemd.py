"""deploy/systemd: the unit's hardening, `systemd-analyze verify` and
`security`, and the example config accepted by memnoded."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from deploy_common import DEPLOY, Memnoded

UNIT = DEPLOY / "systemd" / "memnoded.service"
CONF = DEPLOY / "systemd" / "memnoded.conf"
EXEC = "/usr/local/bin/memnoded"


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
    if not path:
        pytest.skip("systemd-analyze not found (Debian package systemd): unit not verified")
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


def test_example_config_is_loopback_only_and_accepted():
    settings = {}
    for line in CONF.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings[key] = value
    assert settings["listen"].startswith("127.0.0.1:")
    assert settings["metrics_address"].startswith("127.0.0.1:")
    with Memnoded(f"--config={CONF}", "--listen=127.0.0.1:0", "--metrics_address=") as m:
        assert m.stop() == 0, "memnoded stops cleanly on SIGTERM (KillSignal)"
