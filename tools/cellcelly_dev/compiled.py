"""`make compile`: the package as the services image ships it, the charging path compiled by mypyc.

setup.py compiles its `COMPILED` modules when `CELLCELLY_COMPILE=1`; this builds that wheel with the
dev venv's mypy and setuptools and unpacks it into a directory which, put first on `PYTHONPATH`,
makes this interpreter and every process it starts import the compiled modules instead of the
source tree's (`PYTHONPATH=build/compiled make bench`, the compiled tier of the tests). A build is
kept under the directory by the hash of what it was made from, so an unchanged tree builds once.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
PROBE = "cellcelly.diameter.codec"  # compiled in every build: what proves a directory is one


def source_hash() -> str:
    """What the wheel is made of: setup.py, pyproject.toml and every file of the package."""
    digest = hashlib.sha256()
    files = [ROOT / "setup.py", ROOT / "pyproject.toml"]
    files += sorted(p for p in (ROOT / "services" / "cellcelly").rglob("*") if _shipped(p))
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _shipped(path: Path) -> bool:
    return path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".so", ".pyc")


def build(directory: Path) -> Path:
    """The compiled package unpacked into `directory` (made again only when the sources changed).

    One build at a time a directory: a second caller (the compiled tier's fixture, while CI builds
    in the background beside the first tiers) waits for the first and then finds it done.
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    with (directory.parent / f".{directory.name}.lock").open("wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(directory)


def _build(directory: Path) -> Path:
    stamp = directory / ".source-hash"
    wanted = source_hash()
    if stamp.is_file() and stamp.read_text() == wanted:
        return directory
    with tempfile.TemporaryDirectory(prefix="cellcelly-compile-") as tmp:
        # a copy: the build writes build/ and *.egg-info beside setup.py, never into the work tree
        source = Path(tmp) / "src"
        source.mkdir()
        for name in ("setup.py", "pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, source / name)
        shutil.copytree(
            ROOT / "services", source / "services", ignore=shutil.ignore_patterns("__pycache__", "*.so")
        )
        wheels = Path(tmp) / "wheels"
        command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-build-isolation", "--no-deps"]
        env = {**os.environ, "CELLCELLY_COMPILE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        done = subprocess.run(
            [*command, "--wheel-dir", str(wheels), str(source)], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"the compiled build failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        (wheel,) = wheels.glob("cellcelly-*.whl")
        if directory.exists():
            shutil.rmtree(directory)
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(directory)
    stamp.write_text(wanted)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", default=str(ROOT / "build" / "compiled"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    directory = build(Path(args.directory).resolve())
    log.info("compiled package in %s: PYTHONPATH=%s imports it", directory, directory)


if __name__ == "__main__":
    main()
