"""`python -m cellcelly_operator [kopf run options]`: the operator on every namespace by default."""

from __future__ import annotations

import os
import sys

from kopf.cli import main as kopf_main

from cellcelly_operator.settings import SCOPE_ENV


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    namespaced = any(a in ("-n", "--namespace") or a.startswith("--namespace=") for a in args)
    scope = [] if namespaced or any(a in ("-A", "--all-namespaces") for a in args) else ["-A"]
    # as the chart does: in namespace scope kopf must not scan namespaces and CRDs cluster-wide
    os.environ.setdefault(SCOPE_ENV, "namespace" if namespaced else "cluster")
    kopf_main(["run", *scope, "-m", "cellcelly_operator.handlers", *args])


if __name__ == "__main__":
    main()
