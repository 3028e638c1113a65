"""Loads the issuer's signing keys from files (never from Kafka or Redis): for each kid in
Settings.signing_keys, `<signing_dir>/<kid>.key.pem` (PKCS#8 PEM, ECDSA P-256) and
`<kid>.cert.pem` (its certificate, published in the JWKS as `x5c`).

Rotation (issue 17 §1): add the new key as `published` and deploy (verifiers fetch it), then
make it `active` and the old one `retired` (still listed, so what it signed still verifies).
In development with no keys configured a key `local-1` is generated into the data dir (mode
0600); elsewhere notify refuses to start without one. `make up` generates `local-1` into
`<data_dir>/signing` and names it (deploy/local/stack.py); for production make a key with
`python -m services.notify.keystore --dir DIR --kid 2026-11` (or bring one whose certificate
your CA issued) and give notify HOMEWARD_SIGNING_DIR and HOMEWARD_SIGNING_KEYS."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.notify.signing import Keyring, SigningKey, self_signed
from shared.settings import Settings
from shared.verification import KeyState

LOCAL_KID = "local-1"


class SigningKeysMissing(RuntimeError):
    pass


def key_paths(directory: Path, kid: str) -> tuple[Path, Path]:
    return directory / f"{kid}.key.pem", directory / f"{kid}.cert.pem"


def generate_key(directory: Path, kid: str, issuer: str) -> None:
    """A new P-256 key and its self-signed certificate under `directory` (the key 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    key_file, cert_file = key_paths(directory, kid)
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    cert_file.write_bytes(self_signed(private, kid, issuer).public_bytes(
        serialization.Encoding.PEM))


def load_key(directory: Path, kid: str, state: KeyState) -> SigningKey:
    key_file, cert_file = key_paths(directory, kid)
    try:
        private = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise SigningKeysMissing(f"signing key {kid}: {exc}") from exc
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise SigningKeysMissing(f"signing key {kid} is not an EC key")
    if cert.public_key() != private.public_key():
        raise SigningKeysMissing(f"{cert_file} is not the certificate of {key_file}")
    return SigningKey(kid=kid, state=state, private=private, cert=cert)


def load_keyring(settings: Settings) -> Keyring:
    """The keyring Settings describe; raises SigningKeysMissing (the service does not start)
    when a file is missing or, outside development, no key is configured."""
    directory = settings.signing_dir or settings.data_dir / "signing"
    wanted = {kid: KeyState(state) for kid, state in settings.signing_keys.items()}
    if not wanted:
        if settings.environment != "development":
            raise SigningKeysMissing(
                "no signing key: set HOMEWARD_SIGNING_DIR and HOMEWARD_SIGNING_KEYS "
                '(e.g. {"2026-11": "active"}); alerts must be signed outside development')
        if not key_paths(directory, LOCAL_KID)[0].exists():
            generate_key(directory, LOCAL_KID, "Homeward (development)")
        wanted = {LOCAL_KID: KeyState.active}
    try:
        return Keyring(tuple(load_key(directory, kid, state) for kid, state in wanted.items()))
    except ValueError as exc:
        raise SigningKeysMissing(str(exc)) from exc


def main(argv: list[str] | None = None) -> int:
    """Generate a signing key and its self-signed certificate (refuses to overwrite a key)."""
    parser = argparse.ArgumentParser(description="Generate an issuer signing key (ECDSA P-256) "
                                     "and its self-signed certificate for notify.")
    parser.add_argument("--dir", type=Path, required=True, help="HOMEWARD_SIGNING_DIR")
    parser.add_argument("--kid", required=True, help="key id, e.g. 2026-11")
    parser.add_argument("--issuer", default="Homeward", help="certificate subject name")
    args = parser.parse_args(argv)
    if key_paths(args.dir, args.kid)[0].exists():
        parser.error(f"{key_paths(args.dir, args.kid)[0]} exists; choose a new kid to rotate")
    generate_key(args.dir, args.kid, args.issuer)
    print(f'{args.dir}/{args.kid}.key.pem written; publish it first: '
          f'HOMEWARD_SIGNING_KEYS=\'{{"{args.kid}": "published", ...}}\'')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
