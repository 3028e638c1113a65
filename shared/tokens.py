"""Print a bearer token the local stack accepts.

    python -m shared.tokens --role operator --region 140403
    python -m shared.tokens --role hub --region 140400 --hub CIH
"""

from __future__ import annotations

import argparse
from pathlib import Path

from shared.auth import Role, mint_token
from shared.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", required=True, choices=[r.value for r in Role])
    parser.add_argument("--region", required=True, help="6-digit region code; 000000 = national")
    parser.add_argument("--hub", default=None, help="hub id (role hub)")
    parser.add_argument("--sub", default=None, help="subject (who); default: role + random")
    parser.add_argument("--permission", action="append", default=[],
                        help="extra permission, e.g. release (repeatable)")
    parser.add_argument("--ttl", type=int, default=12 * 3600, help="seconds until expiry")
    parser.add_argument("--private-key", type=Path, default=None,
                        help="PEM file, for HOMEWARD_JWT_ALGORITHM=RS256 or EdDSA")
    args = parser.parse_args(argv)
    if len(args.region) != 6 or not args.region.isdigit():
        parser.error("--region must be a 6-digit administrative division code")
    private_key = args.private_key.read_text() if args.private_key else None
    print(mint_token(Settings(), args.role, args.region, hub_id=args.hub, sub=args.sub,
                     permissions=args.permission, ttl_s=args.ttl, private_key=private_key))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
