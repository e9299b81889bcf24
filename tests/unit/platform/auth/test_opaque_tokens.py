from __future__ import annotations

import base64
import hashlib

from ledgerd.platform.auth.opaque_tokens import OpaqueTokens

tokens = OpaqueTokens()


def test_a_token_is_256_random_bits_in_base64url() -> None:
    token = tokens.new_token()
    assert len(base64.urlsafe_b64decode(token + "=")) == 32
    assert len({tokens.new_token() for _ in range(1000)}) == 1000


def test_the_digest_is_the_sha256_of_the_token_and_reveals_nothing_usable() -> None:
    token = tokens.new_token()
    digest = tokens.digest(token)
    assert digest == tokens.digest(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token not in digest
    assert digest != tokens.digest(tokens.new_token())
