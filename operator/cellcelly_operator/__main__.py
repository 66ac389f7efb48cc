"""`python -m cellcelly_operator [kopf run options]`: the operator on every namespace by default."""

from __future__ import annotations

import sys

from kopf.cli import main as kopf_main


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    scope = [] if any(a in ("-n", "--namespace", "-A", "--all-namespaces") for a in args) else ["-A"]
    kopf_main(["run", *scope, "-m", "cellcelly_operator.handlers", *args])


if __name__ == "__main__":
    main()
