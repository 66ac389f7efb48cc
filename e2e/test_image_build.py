"""The images build here with podman (from a local debootstrap base) and do what they say.

Marker e2e: about 3 minutes on a fresh machine (debootstrap, then two builds that pip-install the
project), seconds once podman's layer cache has them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from cellcelly.deploy.child import free_port
from cellcelly_testing import require

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "CONTAINERS_CONF": str(ROOT / "images" / "podman" / "containers.conf"),
    "ENGINE": "podman",
}


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["podman", *args], env=ENV, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}: {done.stderr[-3000:]}")
    return done


@pytest.fixture(scope="module")
def images() -> tuple[str, str]:
    """Both images, built by scripts/images.sh build (the base first, when it is not there)."""
    for tool, package in (
        ("podman", "podman"),
        ("buildah", "buildah"),
        ("runc", "runc"),
        ("debootstrap", "debootstrap"),
    ):
        require(shutil.which(tool) is not None, f"{tool} not installed: apt-get install {package}")
    done = subprocess.run(
        ["bash", "scripts/images.sh", "build"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=840
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    names = subprocess.run(
        ["bash", "scripts/images.sh", "names"], cwd=ROOT, env=ENV, capture_output=True, text=True, check=True
    ).stdout.split()
    return names[0], names[1]


@pytest.fixture
def container_name() -> Iterator[Callable[[], str]]:
    names: list[str] = []

    def make() -> str:
        names.append(f"cellcelly-test-{uuid.uuid4().hex[:8]}")
        return names[-1]

    yield make
    for name in names:
        podman("rm", "--force", "--time", "2", name, check=False)


def test_services_image_runs_the_cli_as_uid_10001(images: tuple[str, str]) -> None:
    services, _ = images
    helped = podman("run", "--rm", services, "--help")
    assert "usage: cellcelly" in helped.stdout
    for command in ("ocs", "dgw", "mw", "sf", "traffic"):
        assert command in helped.stdout
    assert podman("run", "--rm", "--entrypoint", "id", services, "-u").stdout.strip() == "10001"
    tools = podman(
        "run", "--rm", "--entrypoint", "sh", services, "-c", "espeak-ng --version && sox --version"
    )
    assert "eSpeak NG" in tools.stdout and "SoX" in tools.stdout


def test_labels_and_healthcheck_are_in_the_image(images: tuple[str, str]) -> None:
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    for ref in images:
        labels = podman("image", "inspect", "--format", "{{json .Config.Labels}}", ref).stdout
        assert '"org.opencontainers.image.version":"0.1.0"' in labels.replace(" ", "")
        if revision.returncode == 0:
            assert revision.stdout.strip() in labels
        health = podman("image", "inspect", "--format", "{{json .Config.Healthcheck}}", ref).stdout
        assert "/healthz" in health


def test_healthcheck_is_healthy_on_a_serving_mw_and_unhealthy_on_the_wrong_port(
    images: tuple[str, str], container_name: Callable[[], str]
) -> None:
    services, _ = images
    make = container_name
    port = free_port()
    good = make()
    podman(
        "run", "--detach", "--name", good,
        "--env", f"CELLCELLY_MW_PORT={port}", "--env", f"CELLCELLY_HEALTH_PORT={port}",
        "--env", "CELLCELLY_MW_ARGON2_MEMORY_KIB=8192", "--env", "CELLCELLY_MW_ARGON2_TIME_COST=1",
        services, "mw",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            logs = podman("logs", good, check=False)
            raise AssertionError(
                f"cellcelly mw in the image did not serve /healthz: {logs.stdout}{logs.stderr}"
            )
        time.sleep(0.3)
    assert podman("healthcheck", "run", good, check=False).returncode == 0
    # the data directory is the non-root user's own
    listing = podman("exec", good, "ls", "-n", "/var/lib/cellcelly/data").stdout
    assert "cellcelly.db" in listing and " 10001 10001 " in listing

    wrong = make()
    podman(
        "run", "--detach", "--name", wrong, "--env", f"CELLCELLY_MW_PORT={free_port()}",
        "--env", f"CELLCELLY_HEALTH_PORT={free_port()}", services, "mw",
    )  # fmt: skip
    time.sleep(3)
    checked = podman("healthcheck", "run", wrong, check=False)
    assert checked.returncode != 0 and "unhealthy" in checked.stdout


def test_operator_image_has_kopf_and_the_operator_package(images: tuple[str, str]) -> None:
    _, operator = images
    assert podman("run", "--rm", "--entrypoint", "id", operator, "-u").stdout.strip() == "10001"
    version = podman("run", "--rm", "--entrypoint", "kopf", operator, "--version")
    assert "kopf" in version.stdout.lower()
    # every operator module imports from the operator's own distribution; the service stack is not there
    imported = podman(
        "run", "--rm", "--entrypoint", "python3", operator, "-c",
        "import importlib, importlib.util, pkgutil, cellcelly_operator as o\n"
        "mods = [m.name for m in pkgutil.walk_packages(o.__path__, 'cellcelly_operator.')]\n"
        "[importlib.import_module(m) for m in mods if not m.endswith('__main__')]\n"
        "print(len(mods), [d for d in ('cellcelly', 'fastapi', 'sqlalchemy', 'argon2', 'uvicorn', 'kmock')"
        " if importlib.util.find_spec(d)])",
    )  # fmt: skip
    count, present = imported.stdout.strip().split(" ", 1)
    assert int(count) >= 15 and present == "[]", imported.stdout
    entry = podman("image", "inspect", "--format", "{{json .Config.Entrypoint}}", operator).stdout
    assert "cellcelly_operator.main" in entry and "--all-namespaces" in entry
