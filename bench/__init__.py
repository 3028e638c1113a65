"""Benchmarks: `make bench` runs them against a stack of their own and writes
bench/results/latest.json. Never part of `make test`."""

import os
import secrets

# No default key (issue 12): the benchmarks' own stack signs with a random one.
os.environ.setdefault("HOMEWARD_JWT_SECRET", secrets.token_urlsafe(48))
os.environ.setdefault("HOMEWARD_IDENTITY_SECRET", secrets.token_urlsafe(48))
