"""SM4, SM3 and the request sealing against published vectors and an independent
implementation (gmssl, pure Python)."""

from __future__ import annotations

import base64
import doctest
import hashlib
import hmac
import json

import pytest
from gmssl import func, sm3, sm4
from pydantic import SecretStr

import uplink.sealing
from hazwatch.clock import ManualClock
from hazwatch.uplink_settings import SignatureNames, UplinkEncryption, UplinkSignature
from uplink.sealing import AppSecretSigner, RequestSealer, Sm4Cipher, build_sealer, digest

KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")


def test_doctests() -> None:
    assert doctest.testmod(uplink.sealing).failed == 0


def test_sm4_gbt_32907_example_1() -> None:
    """GB/T 32907-2016 appendix A, example 1: one block, key = plaintext."""
    cipher = Sm4Cipher(KEY, "ecb")
    # PKCS#7 adds a whole block of padding after a 16-byte plaintext: the first
    # ciphertext block is the standard's.
    raw = base64.b64decode(cipher.encrypt(KEY))
    assert raw[:16].hex() == "681edf34d206965e86b3e94f536e4246"
    assert len(raw) == 32
    assert cipher.decrypt(cipher.encrypt(KEY)) == KEY


def test_sm4_cbc_rfc_8998_vector() -> None:
    """RFC 8998 appendix A.2 (SM4-CBC), checked on its two blocks."""
    plain = bytes.fromhex("aaaaaaaabbbbbbbbccccccccddddddddeeeeeeeeffffffffaaaaaaaabbbbbbbb")
    iv = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    raw = base64.b64decode(Sm4Cipher(KEY, "cbc", iv).encrypt(plain))
    assert raw[:32].hex() == ("78ebb11cc40b0a48312aaeb2040244cb4cb7016951909226979b0d15dc6a8f6d")


@pytest.mark.parametrize("mode", ["ecb", "cbc"])
def test_sm4_agrees_with_gmssl(mode: str) -> None:
    iv = bytes(range(16))
    plain = json.dumps({"v": 3.42, "tag": "TK101_LT", "text": "液位"}).encode()
    ours = base64.b64decode(Sm4Cipher(KEY, mode, iv).encrypt(plain))  # type: ignore[arg-type]
    theirs = sm4.CryptSM4()
    theirs.set_key(KEY, sm4.SM4_DECRYPT)
    if mode == "ecb":
        assert theirs.crypt_ecb(ours) == plain  # gmssl strips PKCS#7 itself
    else:
        assert theirs.crypt_cbc(iv, ours) == plain


def test_sm3_gbt_32905_examples() -> None:
    assert digest("sm3", b"", b"abc").hex() == (
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )
    assert digest("sm3", b"", b"abcd" * 16).hex() == (
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    )


def _hmac_sm3_by_hand(key: bytes, message: bytes) -> bytes:
    """RFC 2104 over gmssl's SM3 (block size 64): an independent HMAC-SM3."""

    def h(data: bytes) -> bytes:
        return bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(data)))

    key = key.ljust(64, b"\0") if len(key) <= 64 else h(key).ljust(64, b"\0")
    inner = h(bytes(k ^ 0x36 for k in key) + message)
    return h(bytes(k ^ 0x5C for k in key) + inner)


@pytest.mark.parametrize("secret", [b"k", b"appsecret-0123456789", b"x" * 100])
def test_hmac_sm3_agrees_with_rfc_2104_over_gmssl(secret: bytes) -> None:
    message = b"app1" + b"1763820000123" + b"nonce" + b"payload"
    assert digest("hmac-sm3", secret, message) == _hmac_sm3_by_hand(secret, message)


def test_signer_signs_the_configured_message() -> None:
    settings = UplinkSignature(
        kind="hmac-sha256",
        appid="app1",
        secret=SecretStr("s3cret"),
        message="{appid}{timestamp}{nonce}{data}",
        encoding="hex-upper",
        timestamp_unit="s",
        names=SignatureNames(appid="X-App-Id", signature="X-Sign"),
    )
    signer = AppSecretSigner(settings, ManualClock(1_763_820_000_123), nonce=lambda: "n1")
    fields = signer.sign(data='{"a":1}', plain='{"a":1}')
    expected = hmac.new(b"s3cret", b'app11763820000n1{"a":1}', hashlib.sha256).hexdigest()
    assert fields == {
        "X-App-Id": "app1",
        "timestamp": "1763820000",
        "nonce": "n1",
        "X-Sign": expected.upper(),
    }


def test_sealer_encrypts_into_the_envelope_and_signs_the_ciphertext() -> None:
    sealer = build_sealer(
        UplinkSignature(kind="hmac-sm3", appid="a", secret=SecretStr("s")),
        UplinkEncryption(kind="sm4-ecb", key=SecretStr(KEY.hex())),
        ManualClock(),
    )
    sealed = sealer.seal(b'{"records":[1,2]}')
    envelope = json.loads(sealed.body)
    assert list(envelope) == ["data"]
    assert Sm4Cipher(KEY, "ecb").decrypt(envelope["data"]) == b'{"records":[1,2]}'
    h = sealed.headers
    message = f"a{h['timestamp']}{h['nonce']}{envelope['data']}".encode()
    assert h["sign"] == _hmac_sm3_by_hand(b"s", message).hex()


def test_sealer_puts_the_signature_beside_the_data_when_asked() -> None:
    signer = AppSecretSigner(
        UplinkSignature(
            kind="sm3", appid="a", secret=SecretStr("s"), message="{data}{secret}", placement="body"
        ),
        ManualClock(),
    )
    sealed = RequestSealer(None, "data", signer, "body").seal(b'{"x":1}')
    body = json.loads(sealed.body)
    assert body["x"] == 1
    assert body["sign"] == digest("sm3", b"", b'{"x":1}s').hex()
    assert sealed.headers == {}


def test_a_bare_base64_body_is_text() -> None:
    sealed = RequestSealer(Sm4Cipher(KEY, "ecb"), "").seal(b"{}")
    assert sealed.content_type.startswith("text/plain")
    assert Sm4Cipher(KEY, "ecb").decrypt(sealed.body.decode()) == b"{}"
