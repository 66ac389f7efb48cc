"""What the chart and the image run: `kopf run -m cellcelly_operator.main` — importing it registers
the operator's handlers (they live in `handlers`; this name is the one deployments depend on)."""

from __future__ import annotations

from cellcelly_operator import handlers

__all__ = ["handlers"]
