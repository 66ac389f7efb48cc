"""VoltDB's blocking client: `voltdbclient` (pure Python, one call at a time per socket).

The balance store's tools and threads call through it, and the loop's client (`voltdb_wire`)
uses its login handshake. Apart from `balance_voltdb` because mypyc compiles that module (the
services image) and cannot compile a subclass of this untyped library's class.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import voltdbclient  # type: ignore[import-untyped]

# voltdbclient prints its errors to stdout unless given a logger
voltdbclient.logger = logging.getLogger("voltdbclient")

# the balance store's procedures and their parameters' types (both clients frame calls from it)
_FS = voltdbclient.FastSerializer
_S, _L, _B = _FS.VOLTTYPE_STRING, _FS.VOLTTYPE_BIGINT, _FS.VOLTTYPE_VARBINARY
PROCEDURES: dict[str, list[int]] = {
    "BalanceGet": [_S],
    "BalanceCommit": [_S, _L, _S, _S, _S, _S, _S],
    "BalanceSessionOwner": [_S],
    "BalanceOutboxRead": [_L, _L, _L],
    "BalanceOutboxAck": [_L, _L],
    "BalanceOutboxReadPart": [_S, _L, _L, _L],
    "BalanceOutboxAckPart": [_S, _L, _L],
    "@GetPartitionKeys": [_S],
    "BalanceOutboxSize": [],
    "BalanceMsisdns": [_S, _L],
    "@AdHoc": [_S],
    "@UpdateClasses": [_B, _S],
    "@SystemCatalog": [_S],
    "@Statistics": [_S, _L],  # (component, delta): `make bench` reads the procedures' own times
    "@Ping": [],
}


class Response(Protocol):
    """What a procedure call answers (voltdbclient.VoltResponse)."""

    version: int  # -1: made up by the client because the server never answered
    status: int
    statusString: str | None  # noqa: N815 - the client's names
    appStatus: int
    appStatusString: str | None  # noqa: N815
    tables: list[Any] | None


class Connection(Protocol):
    def call(self, procedure: str, params: Sequence[Any]) -> Response: ...

    def close(self) -> None: ...


Connect = Callable[..., Connection]  # (host, port, timeout, username=, password=)


class Client(voltdbclient.FastSerializer):  # type: ignore[misc]
    """FastSerializer, closing its socket when the login fails: its constructor runs the handshake
    and raises without closing, and nothing can reach that socket afterwards (an open file until the
    garbage collector finds it, a ResourceWarning)."""

    def authenticate(self, username: str, password: str) -> None:
        try:
            super().authenticate(username, password)
        except BaseException:
            self.close()
            raise


class VoltConnection:
    """One client socket. voltdbclient's FastSerializer runs one call at a time: one borrower."""

    def __init__(self, host: str, port: int, timeout: float, username: str = "", password: str = "") -> None:
        # the login is part of the handshake: a wrong one is refused before any call
        self._client = Client(
            host,
            port,
            username=username,
            password=password,
            connect_timeout=timeout,
            procedure_timeout=timeout,
        )
        self._procedures = {
            name: voltdbclient.VoltProcedure(self._client, name, types) for name, types in PROCEDURES.items()
        }

    def call(self, procedure: str, params: Sequence[Any]) -> Response:
        response: Response = self._procedures[procedure].call(list(params))
        return response

    def close(self) -> None:
        try:
            self._client.close()
        except OSError:
            pass
