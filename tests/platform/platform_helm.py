"""Running the real helm binaries (fetched by scripts/helm.sh) on the charts, offline."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "charts"
HELM_SH = ROOT / "scripts" / "helm.sh"
VALUES = Path(__file__).resolve().parent / "values"
KUBE_VERSION = "1.31"  # helm --kube-version and kubernetes-validate
NAMESPACE = "telco"


def helm_path(major: int) -> Path | None:
    """The cached binary of helm `major`, or None when scripts/helm.sh fetch has not run."""
    done = subprocess.run(
        ["bash", str(HELM_SH), "path", str(major)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return None
    return Path(done.stdout.strip())


class Helm:
    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        # helm keeps config, cache and data under these; a test must not read or write the user's
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            "KUBECONFIG": str(home / "no-kubeconfig"),
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=self.env, check=False, timeout=120
        )

    @staticmethod
    def _value_args(values: list[Path], sets: list[str]) -> list[str]:
        args: list[str] = []
        for path in values:
            args += ["--values", str(path)]
        for item in sets:
            args += ["--set", item]
        return args

    def lint(self, chart: str, values: list[Path], sets: list[str]) -> subprocess.CompletedProcess[str]:
        return self.run(
            "lint", "--strict", "--namespace", NAMESPACE, *self._value_args(values, sets), str(CHARTS / chart)
        )

    def template(
        self, chart: str, values: list[Path], sets: list[str], release: str = "demo", crds: bool = False
    ) -> list[dict[str, Any]]:
        args = [
            "template",
            release,
            str(CHARTS / chart),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
        ]
        if crds:
            args.append("--include-crds")
        done = self.run(*args, *self._value_args(values, sets))
        assert done.returncode == 0, done.stderr
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc]

    def template_error(self, chart: str, sets: list[str]) -> str:
        """helm template's error text for values it must refuse ("" when it accepted them)."""
        args = [
            "template",
            "demo",
            str(CHARTS / chart),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
        ]
        done = self.run(*args, *self._value_args([], sets))
        return "" if done.returncode == 0 else done.stderr


def version_output(binary: Path) -> str:
    return subprocess.run(
        [str(binary), "version", "--short"], capture_output=True, text=True, check=True
    ).stdout
