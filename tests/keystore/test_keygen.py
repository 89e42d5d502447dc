"""Key format: mint, parse, checksum, hint."""

import pytest

from keystore import MalformedKey, keygen


def test_minted_key_parses_back_to_its_parts() -> None:
    full, key_id, secret = keygen.mint()
    assert full.startswith("th-") and len(full) == keygen.KEY_LEN
    assert keygen.parse(full) == (key_id, secret)


def test_secret_carries_at_least_128_bits() -> None:
    import math
    assert keygen.SECRET_LEN * math.log2(62) >= 128


def test_minted_keys_differ() -> None:
    assert len({keygen.mint()[0] for _ in range(200)}) == 200


def _flip(key: str, i: int) -> str:
    c = key[i]
    return key[:i] + ("A" if c != "A" else "B") + key[i + 1:]


@pytest.mark.parametrize("mangle", [
    lambda k: k[:-1],                       # truncated
    lambda k: k + "x",                      # over-long
    lambda k: "tx-" + k[3:],                # wrong prefix
    lambda k: _flip(k, 20),                 # typo in the secret
    lambda k: _flip(k, 5),                  # typo in the id
    lambda k: _flip(k, len(k) - 1),         # bad checksum
    lambda k: k[:20] + "\r" + k[21:],       # control character
    lambda k: k[:20] + "é" + k[21:],        # non-ASCII
    lambda k: k.replace("_", "-"),          # wrong separator
    lambda k: "",                           # empty
    lambda k: "sk-" + "a" * 48,             # someone else's key
])
def test_malformed_keys_are_rejected(mangle) -> None:
    full, _, _ = keygen.mint()
    with pytest.raises(MalformedKey):
        keygen.parse(mangle(full))


def test_hint_shows_prefix_and_last_four_only() -> None:
    full, _, secret = keygen.mint()
    hint = keygen.hint(full)
    assert hint == f"{full[:7]}…{full[-4:]}"
    assert secret not in hint and secret[:8] not in hint
