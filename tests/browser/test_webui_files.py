"""The web UI's static files agree with each other: the service worker precaches every shell
file (a file left out would be missing offline), every module import resolves, icons are real PNGs."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

WEBUI = Path(__file__).resolve().parents[2] / "services" / "cellcelly" / "webui"


def precached() -> set[str]:
    text = (WEBUI / "sw.js").read_text(encoding="utf-8")
    block = re.search(r"const SHELL = \[(.*?)\];", text, re.S)
    assert block, "no SHELL list in sw.js"
    return set(re.findall(r'"(/[^"]*)"', block.group(1)))


def test_the_service_worker_precaches_every_shell_file_and_nothing_missing() -> None:
    on_disk = {"/" + p.relative_to(WEBUI).as_posix() for p in WEBUI.rglob("*") if p.is_file()}
    shell = precached()
    assert shell - {"/"} <= on_disk, f"precached but absent: {sorted(shell - {'/'} - on_disk)}"
    assert on_disk - {"/sw.js"} == shell - {"/"}, f"not precached: {sorted(on_disk - {'/sw.js'} - shell)}"
    assert "/" in shell


def test_every_module_import_resolves() -> None:
    for module in WEBUI.rglob("*.js"):
        for target in re.findall(r'^import .*? from "(\.[^"]+)";', module.read_text(encoding="utf-8"), re.M):
            assert (module.parent / target).resolve().is_file(), f"{module.name} imports missing {target}"


def test_manifest_icons_are_pngs_of_their_stated_size() -> None:
    manifest = json.loads((WEBUI / "manifest.webmanifest").read_text(encoding="utf-8"))
    for icon in manifest["icons"]:
        data = (WEBUI / icon["src"].lstrip("/")).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        width, height = struct.unpack(">II", data[16:24])
        assert f"{width}x{height}" == icon["sizes"]
