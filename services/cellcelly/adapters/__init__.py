"""Adapters: the embedded and real implementations of the ports in `cellcelly.ports`."""
