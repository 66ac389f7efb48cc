"""Access tokens: a token verified once is known by its text, and answers exactly as a fresh check
would (times checked again on every use; nothing unverified is ever known)."""

from __future__ import annotations

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellcelly import security
from cellcelly.security import AccessClaims, TokenInvalid, Tokens

SECRET = "k" * 40


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _outcome(tokens: Tokens, token: str) -> AccessClaims | str:
    try:
        return tokens.verify(token)
    except TokenInvalid:
        return "invalid"


@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(-60, 2_000), st.booleans()), min_size=1, max_size=40)
)
def test_a_known_token_answers_as_a_fresh_check_would(steps: list[tuple[int, int, bool]]) -> None:
    clock = Clock()
    issuer = Tokens(SECRET, access_seconds=900, clock=clock)
    issued = [
        issuer.issue(f"532000000{i}", "subscriber", now=clock.now + 300 * i, version=i) for i in range(4)
    ]
    remembering = Tokens(SECRET, access_seconds=900, clock=clock)
    for which, moved, tampered in steps:
        clock.now += moved  # forwards and back: a token "not yet valid" is refused, known or not
        token = issued[which]
        if tampered:
            token = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        fresh = Tokens(SECRET, access_seconds=900, clock=clock)
        assert _outcome(remembering, token) == _outcome(fresh, token)


def test_a_known_token_is_not_decoded_again_but_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    tokens = Tokens(SECRET, access_seconds=900, clock=clock, leeway=30)
    token = tokens.issue("5321112233", "subscriber")
    decodes = 0
    real = jwt.decode

    def counting(*args: object, **kwargs: object) -> object:
        nonlocal decodes
        decodes += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counting)
    first = tokens.verify(token)
    assert [tokens.verify(token) for _ in range(5)] == [first] * 5
    assert decodes == 1
    clock.now += 900 + 30  # exp + leeway
    with pytest.raises(TokenInvalid):
        tokens.verify(token)
    # another secret's token of the same claims is never taken for the known one
    other = Tokens("z" * 40, clock=clock).issue("5321112233", "subscriber")
    with pytest.raises(TokenInvalid):
        tokens.verify(other)


def test_only_so_many_tokens_are_known_the_oldest_go_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(security, "VERIFIED_TOKENS", 3)
    clock = Clock()
    tokens = Tokens(SECRET, clock=clock)
    issued = [tokens.issue(f"53200000{i:02d}", "subscriber") for i in range(5)]
    for token in issued:
        tokens.verify(token)
    assert list(tokens._verified) == issued[2:]
    assert tokens.verify(issued[0]).msisdn == "5320000000"  # forgotten, so checked again: still valid
