"""`cellcelly` processes found through /proc: which command a process runs, and a parent's children."""

from __future__ import annotations

from pathlib import Path


def _command(argv: list[bytes]) -> str | None:
    """The `cellcelly` command (`run`, `dgw`, `sf`...) of a command line, None for another program."""
    if b"cellcelly.cli" not in argv or argv.index(b"cellcelly.cli") + 1 >= len(argv):
        return None
    return argv[argv.index(b"cellcelly.cli") + 1].decode()


def _helper(argv: list[bytes]) -> str | None:
    """A helper process a service starts (`python -m cellcelly.adapters.balance_checkpointer`, the
    embedded store's snapshots), named by its module's last part; None for anything else."""
    if b"-m" not in argv or argv.index(b"-m") + 1 >= len(argv):
        return None
    module = argv[argv.index(b"-m") + 1]
    if not module.startswith(b"cellcelly.") or module == b"cellcelly.cli":
        return None
    return module.rsplit(b".", 1)[1].decode()


def command_of(pid: int) -> str | None:
    try:
        return _command(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"))
    except OSError:
        return None


def cellcelly_children(parent: int, *, helpers: bool = False) -> dict[str, int]:
    """{command: pid} of the `cellcelly` processes whose parent is `parent` (`make run`'s DGW, SF),
    and with `helpers` its helper processes too (by module: `balance_checkpointer`)."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        command = _command(argv) or (_helper(argv) if helpers else None)
        if command is not None and int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found[command] = int(entry.name)
    return found
