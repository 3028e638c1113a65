"""The issuer's signatures (issue 17 §1): CAP 1.2 XML signed with an enveloped XML Signature
(XML-DSig, ECDSA P-256 / SHA-256, which CAP 1.2 §3.3.1 allows as the last child of `alert`)
and JSON pushes with a detached JWS (RFC 7515 appendix F, ES256, `kid` header). The public
keys are published as a JWKS (RFC 7517) whose entries carry the key's certificate (`x5c`), so
an XML-DSig verifier can pin it.

Pure: keys come in as objects (services.notify.keystore reads them from files); nothing here
touches Kafka, Redis or the network. Private keys never leave this module's objects."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm
from lxml import etree
from signxml import (
    DigestAlgorithm,
    SignatureConfiguration,
    SignatureMethod,
    XMLSigner,
    XMLVerifier,
    methods,
)

from shared.verification import SIGNATURE_ALGORITHM, KeyState

DS_NS = "http://www.w3.org/2000/09/xmldsig#"


class SignatureInvalid(ValueError):
    """A signature that does not verify against the published keys (or names no such key)."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    state: KeyState
    private: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def public(self) -> ec.EllipticCurvePublicKey:
        key = self.cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return key

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(self.public, as_dict=True)
        der = self.cert.public_bytes(serialization.Encoding.DER)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": SIGNATURE_ALGORITHM,
                "x5c": [base64.b64encode(der).decode()]}


@dataclass(frozen=True)
class Keyring:
    """The issuer's keys in their rotation states; exactly one is active (signs)."""

    keys: tuple[SigningKey, ...]

    def __post_init__(self) -> None:
        active = [k.kid for k in self.keys if k.state == KeyState.active]
        if len(active) != 1:
            raise ValueError(f"exactly one signing key must be active, not {active or 'none'}")
        for key in self.keys:
            if not isinstance(key.private.curve, ec.SECP256R1):
                raise ValueError(f"signing key {key.kid} is not ECDSA P-256")

    @property
    def active(self) -> SigningKey:
        return next(k for k in self.keys if k.state == KeyState.active)

    def jwks(self) -> dict[str, Any]:
        """Every listed key (published, active and retired), the active one first."""
        ordered = sorted(self.keys, key=lambda k: k.state != KeyState.active)
        return {"keys": [k.jwk() for k in ordered]}

    def sign_cap(self, xml: bytes) -> bytes:
        """The CAP message with its enveloped signature appended to `alert` (KeyName = kid,
        X509Data = the key's certificate)."""
        key = self.active
        signer = XMLSigner(method=methods.enveloped,
                           signature_algorithm=SignatureMethod.ECDSA_SHA256,
                           digest_algorithm=DigestAlgorithm.SHA256)
        signed = signer.sign(etree.fromstring(xml), key=key.private, key_name=key.kid,
                             cert=[key.cert.public_bytes(serialization.Encoding.PEM).decode()])
        return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))

    def sign_body(self, payload: str) -> str:
        """Detached compact JWS of the exact request body: `<header>..<signature>`."""
        return _sign_detached(self.active, payload)


@lru_cache(maxsize=256)
def _sign_detached(key: SigningKey, payload: str) -> str:
    """Cached: one fan-out sends the same body to thousands of recipients."""
    return jwt.api_jws.encode(payload.encode(), key.private, algorithm=SIGNATURE_ALGORITHM,
                              headers={"kid": key.kid, "typ": None}, is_payload_detached=True)


# --- verification, as anyone holding the JWKS does it ---------------------------------------


def _jwk_of(jwks: dict[str, Any], kid: str) -> dict[str, Any]:
    for jwk in jwks.get("keys", []):
        if jwk.get("kid") == kid:
            return dict(jwk)
    raise SignatureInvalid(f"no published key {kid!r}")


def verify_cap(xml: bytes, jwks: dict[str, Any]) -> bytes:
    """The signed CAP document (ds:Signature removed) if its signature verifies against the
    JWKS key it names; raises SignatureInvalid otherwise."""
    try:
        names = etree.fromstring(xml).findall(f"{{{DS_NS}}}Signature//{{{DS_NS}}}KeyName")
    except etree.XMLSyntaxError as exc:
        raise SignatureInvalid(f"not XML: {exc}") from exc
    if len(names) != 1 or not names[0].text:
        raise SignatureInvalid("the signature names no key")
    jwk = _jwk_of(jwks, names[0].text)
    cert = base64.b64decode(jwk["x5c"][0])
    pem = x509.load_der_x509_certificate(cert).public_bytes(serialization.Encoding.PEM)
    try:
        result = XMLVerifier().verify(
            xml, x509_cert=pem.decode(),
            expect_config=SignatureConfiguration(
                location="./", signature_methods=frozenset({SignatureMethod.ECDSA_SHA256}),
                digest_algorithms=frozenset({DigestAlgorithm.SHA256})))
    except Exception as exc:  # signxml raises several kinds; all mean "does not verify"
        raise SignatureInvalid(f"{type(exc).__name__}: {exc}") from exc
    assert not isinstance(result, list)
    return bytes(etree.tostring(result.signed_xml))


def verify_body(payload: bytes | str, token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """The JWS header if `token` is a valid detached ES256 signature of `payload` by the key it
    names; raises SignatureInvalid otherwise."""
    raw = payload.encode() if isinstance(payload, str) else payload
    try:
        header = jwt.get_unverified_header(token)
        jwk = _jwk_of(jwks, str(header.get("kid")))
        key = ECAlgorithm.from_jwk(json.dumps(jwk))
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise SignatureInvalid(f"key {header.get('kid')!r} is not a public EC key")
        jwt.api_jws.decode(token, key, algorithms=[SIGNATURE_ALGORITHM], detached_payload=raw)
    except jwt.PyJWTError as exc:
        raise SignatureInvalid(str(exc)) from exc
    return header


def self_signed(private: ec.EllipticCurvePrivateKey, kid: str, issuer: str,
                years: int = 10) -> x509.Certificate:
    """A certificate for a key generated locally (development, tests): subject = issuer name
    and kid. Production keys come with the certificate their authority issued."""
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, issuer),
                      x509.NameAttribute(NameOID.COMMON_NAME, kid)])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(private.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365 * years))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(private, hashes.SHA256()))
