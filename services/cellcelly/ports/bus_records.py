"""What travels on the event bus (`ports/event_bus.py`): a record to publish and one read back.

A module of their own so that mypyc compiles them (setup.py): one of each is made for every event,
in the relay of the charging process and again in the SF. `event_bus.py` itself stays interpreted:
compiled, its Protocols become traits, and mypyc failed on the compiled adapter that subclasses one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    key: str
    value: bytes  # orjson of a versioned event dict (see cellcelly.codec.event_to_dict)

    # written out: mypyc compiles this one, while a dataclass's own runs as interpreted Python
    # (~1 µs an event, in the relay of the charging process and again in the SF)
    def __init__(self, topic: str, key: str, value: bytes) -> None:
        object.__setattr__(self, "topic", topic)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "value", value)


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str
    value: bytes

    # written out, as Outgoing's
    def __init__(self, topic: str, partition: int, offset: int, key: str, value: bytes) -> None:
        object.__setattr__(self, "topic", topic)
        object.__setattr__(self, "partition", partition)
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "value", value)
