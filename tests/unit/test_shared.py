from datetime import UTC, datetime

import jwt
import pytest

from shared.auth import InvalidToken, Role, mint_token, verify_token
from shared.events import CloudEvent, PoisonMessage
from shared.regions import scope_prefix, within
from shared.settings import PUBLIC_SECRETS, Settings


def test_jurisdiction_is_a_prefix_test() -> None:
    assert within("140400", "140403")
    assert within("140000", "140403")
    assert within("140403", "140403")
    assert not within("140400", "140503")
    assert not within("140400", "320102")
    assert within("000000", "320102")
    assert scope_prefix("000000") == ""


def test_token_round_trip_carries_role_region_and_hub() -> None:
    settings = Settings()
    token = mint_token(settings, Role.hub, "140400", hub_id="CIH", permissions=["release"])
    who = verify_token(settings, token)
    assert (who.role, who.region, who.hub_id, who.permissions) == (
        Role.hub, "140400", "CIH", ["release"])


def test_expired_forged_and_garbage_tokens_are_refused() -> None:
    settings = Settings()
    with pytest.raises(InvalidToken, match="expired"):
        verify_token(settings, mint_token(settings, Role.operator, "140403", ttl_s=-10))
    forged = jwt.encode({"sub": "x", "role": "admin", "region": "000000", "iss": "homeward",
                         "exp": 9999999999}, "not-the-secret-" * 3, algorithm="HS256")
    with pytest.raises(InvalidToken):
        verify_token(settings, forged)
    with pytest.raises(InvalidToken):
        verify_token(settings, "garbage")


def test_no_environment_accepts_the_published_secret() -> None:
    """Issue 12: the secret once committed as the development default works nowhere."""
    for environment in ("development", "staging", "production"):
        for secret in PUBLIC_SECRETS:
            with pytest.raises(ValueError, match="published in the repository"):
                Settings(environment=environment, jwt_secret=secret)
    Settings(environment="production", jwt_secret="a-real-secret-from-the-vault-of-32+bytes")
    real = "a-real-identity-key-from-the-vault-of-32+bytes"
    Settings(environment="production", jwt_secret="a-real-secret-from-the-vault-of-32+bytes",
             identity_secret=real)


def test_the_identity_key_has_no_default() -> None:
    """Issue 12/19: the child-identity HMAC key is a secret like the JWT key."""
    env = {"jwt_secret": "a-real-secret-from-the-vault-of-32+bytes"}
    with pytest.raises(ValueError, match="IDENTITY_SECRET"):
        Settings(environment="production", identity_secret="", **env)
    with pytest.raises(ValueError, match="published in the repository"):
        Settings(environment="production",
                 identity_secret="homeward-local-identity-secret-change-me", **env)
    with pytest.raises(ValueError, match="shorter than"):
        Settings(environment="production", identity_secret="short", **env)


def test_cloudevent_binary_mode_round_trip() -> None:
    event = CloudEvent(type="homeward.case.opened.v1", source="/t", subject="140403-x",
                       time=datetime(2026, 11, 22, tzinfo=UTC), data={"a": "张"})
    headers = {k: v.encode() for k, v in event.headers().items()}
    back = CloudEvent.from_kafka(headers, event.value())
    assert back == event
    assert headers["ce_subject"] == b"140403-x"


@pytest.mark.parametrize(
    ("headers", "value", "problem"),
    [
        ({}, b"{}", "missing header ce_specversion"),
        ({"ce_specversion": "1.0"}, b"not json", "not JSON"),
        ({"ce_specversion": "1.0"}, b"[1]", "JSON object"),
        ({"ce_specversion": "0.3"}, b"{}", "must be 1.0"),
    ],
)
def test_poison_messages_are_named(headers: dict[str, str], value: bytes, problem: str) -> None:
    with pytest.raises(PoisonMessage, match=problem):
        CloudEvent.from_kafka(headers, value)


def _keypair(kind: str) -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key = (ed25519.Ed25519PrivateKey.generate() if kind == "EdDSA"
           else rsa.generate_private_key(public_exponent=65537, key_size=2048))
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


@pytest.mark.parametrize("algorithm", ["RS256", "EdDSA"])
def test_production_tokens_are_verified_with_the_configured_public_key(algorithm: str) -> None:
    private, public = _keypair(algorithm)
    settings = Settings(environment="production", jwt_algorithm=algorithm, jwt_public_key=public,
                        identity_secret="a-real-identity-key-from-the-vault")
    token = mint_token(settings, Role.commander, "140400", private_key=private)
    assert verify_token(settings, token).region == "140400"
    other_private, _ = _keypair(algorithm)
    with pytest.raises(InvalidToken):
        verify_token(settings, mint_token(settings, Role.admin, "000000",
                                          private_key=other_private))
    # An HS256 token signed with the public key text must not pass (algorithm confusion).
    confused = jwt.encode({"sub": "x", "role": "admin", "region": "000000", "iss": "homeward",
                           "exp": 9999999999}, "k" * 32, algorithm="HS256")
    with pytest.raises(InvalidToken):
        verify_token(settings, confused)
