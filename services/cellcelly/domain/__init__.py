"""Pure domain: money, units, catalogue and rating, balances, the charging state machine.

Nothing in this package performs I/O or imports an adapter or a web framework; it is what
every back end and every service shares, and what the property tests exercise directly.
"""
