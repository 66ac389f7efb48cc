"""`cellcelly_dev.compiled.build` builds one directory once at a time: CI starts the build in the
background and the compiled tier's fixture, arriving meanwhile, must wait for it, not build beside it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cellcelly_dev import compiled


def test_a_second_build_of_a_directory_waits_for_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spans: list[tuple[float, float]] = []

    def slow_build(directory: Path) -> Path:
        start = time.monotonic()
        time.sleep(0.2)
        spans.append((start, time.monotonic()))
        return directory

    monkeypatch.setattr(compiled, "_build", slow_build)
    target = tmp_path / "compiled"
    threads = [threading.Thread(target=compiled.build, args=(target,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    (first_start, first_end), (second_start, _) = sorted(spans)
    assert second_start >= first_end, "two builds of one directory overlapped"
    assert first_start < first_end
