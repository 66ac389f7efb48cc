"""Secrets `make run` makes for itself and keeps in its data directory (mode 0600).

On a laptop there is no Kubernetes Secret: the embedded stack makes the OCS API key and the admin
token on its first start and keeps each in a file of the data directory, so a restart keeps them
and the README's commands, pasted in another terminal, read them (`$(cat data/admin-token)`). The
deployed services never do this: their secrets come only from the environment.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger(__name__)

ADMIN_TOKEN_FILE = "admin-token"  # the OCS API key's is cellcelly.ocs.auth.KEY_FILE


def kept_secret(data_dir: Path, name: str, min_length: int) -> tuple[str, Path, bool]:
    """The secret in `data_dir/name`, or a new one written there now (0600, never replaced).
    Returns (secret, path, created now); a kept one shorter than `min_length` stops the start."""
    path = data_dir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    made = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            log.warning("secret file readable by others: made 0600", extra={"path": str(path)})
            path.chmod(0o600)
        kept = path.read_text(encoding="utf-8").strip()
        if len(kept) < min_length:
            raise SystemExit(f"{path}: a secret of at least {min_length} characters is needed") from None
        return kept, path, False
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(made + "\n")
    return made, path, True
