"""Print a bearer token the local stack accepts.

    python -m shared.tokens --role operator --region 140403
    python -m shared.tokens --role hub --region 140400 --hub CIH

The key is HOMEWARD_JWT_SECRET or HOMEWARD_JWT_SECRET_FILE when set, else the secret `make up`
generated into its data dir (HOMEWARD_DATA_DIR, default .data/jwt-secret).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from shared.auth import Role, mint_token
from shared.settings import LOCAL_IDENTITY_FILE, LOCAL_PII_KEYS_FILE, LOCAL_SECRET_FILE, Settings

ROOT = Path(__file__).resolve().parents[1]


def local_secret_file() -> Path:
    return Path(os.environ.get("HOMEWARD_DATA_DIR", ROOT / ".data")) / LOCAL_SECRET_FILE


def cli_settings(secret_file: Path | None = None) -> Settings:
    """Settings for a command-line tool run beside the local stack (minting tokens, loading
    hubs): the environment's key, else the secret `make up` wrote into its data dir (and
    likewise the child-identity key, which Settings require since issue 19)."""
    if secret_file is None and not ({"HOMEWARD_JWT_SECRET", "HOMEWARD_JWT_SECRET_FILE"}
                                    & os.environ.keys()):
        candidate = local_secret_file()
        secret_file = candidate if candidate.is_file() else None
    given: dict[str, Path] = {"jwt_secret_file": secret_file} if secret_file else {}
    # Settings also insist on the child-identity key (issue 19), which `make up` writes beside.
    if not {"HOMEWARD_IDENTITY_SECRET", "HOMEWARD_IDENTITY_SECRET_FILE"} & os.environ.keys():
        identity = local_secret_file().with_name(LOCAL_IDENTITY_FILE)
        if identity.is_file():
            given["identity_secret_file"] = identity
    # And on the PII master keys (issue 13), written there too.
    if not {"HOMEWARD_PII_MASTER_KEYS", "HOMEWARD_PII_MASTER_KEYS_FILE"} & os.environ.keys():
        master = local_secret_file().with_name(LOCAL_PII_KEYS_FILE)
        if master.is_file():
            given["pii_master_keys_file"] = master
    return Settings(**given)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", required=True, choices=[r.value for r in Role])
    parser.add_argument("--region", required=True, help="6-digit region code; 000000 = national")
    parser.add_argument("--hub", default=None, help="hub id (role hub)")
    parser.add_argument("--sub", default=None, help="subject (who); default: role + random")
    parser.add_argument("--permission", action="append", default=[],
                        help="extra permission, e.g. release (repeatable)")
    parser.add_argument("--ttl", type=int, default=None,
                        help="seconds until expiry; default and most: HOMEWARD_JWT_MAX_TTL_S")
    parser.add_argument("--secret-file", type=Path, default=None,
                        help=f"HS256 key file; default {local_secret_file()} when no "
                        "HOMEWARD_JWT_SECRET is set")
    parser.add_argument("--private-key", type=Path, default=None,
                        help="PEM file, for HOMEWARD_JWT_ALGORITHM=RS256 or EdDSA")
    args = parser.parse_args(argv)
    if len(args.region) != 6 or not args.region.isdigit():
        parser.error("--region must be a 6-digit administrative division code")
    private_key = args.private_key.read_text() if args.private_key else None
    try:
        settings = cli_settings(args.secret_file)
    except ValueError as exc:
        parser.error(f"no key to sign with: {exc}")
    print(mint_token(settings, args.role, args.region, hub_id=args.hub, sub=args.sub,
                     permissions=args.permission, ttl_s=args.ttl, private_key=private_key))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
