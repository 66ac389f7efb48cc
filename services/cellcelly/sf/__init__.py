"""SF, the sync function: usage and ledger events from the bus into the system of record."""
