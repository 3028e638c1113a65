"""Create the Kafka principals of shared.kafka_acl and exactly their ACLs on a SASL/SCRAM
cluster (issue 14 item 3), with the admin's credentials. Used by `make up` (deploy/local) and
by compose's `topics` job (`python -m shared.kafka_admin`); Kubernetes uses KafkaUsers.

Uses confluent-kafka's AdminClient (librdkafka): aiokafka has no ACL or SCRAM-user API.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import cast

from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from shared import kafka_acl
from shared.kafka_access import KafkaAccess

SCRAM_ITERATIONS = 8192
_RESOURCE = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
_OPERATION = {"Read": AclOperation.READ, "Write": AclOperation.WRITE,
              "Describe": AclOperation.DESCRIBE}


def load_credentials(path: Path) -> dict[str, str]:
    """user -> password for every principal (kafka_acl.USERS and the broker), generated once
    into `path` (mode 0600) and read back on the next run."""
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
    else:
        stored = {}
    wanted = (*kafka_acl.USERS, kafka_acl.BROKER)
    if any(user not in stored for user in wanted):
        stored = {user: stored.get(user) or secrets.token_hex(24) for user in wanted}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(stored, indent=1))
    return stored


def access_for(user: str, bootstrap: str, credentials: dict[str, str]) -> KafkaAccess:
    """How `user` reaches a local SASL_PLAINTEXT cluster."""
    return KafkaAccess(bootstrap, "SASL_PLAINTEXT", "SCRAM-SHA-512",
                       kafka_acl.principal(user), credentials[user])


def _client(admin: KafkaAccess) -> AdminClient:
    config: dict[str, str | int | float | bool] = {"bootstrap.servers": admin.bootstrap,
                                                   "security.protocol": admin.protocol}
    if admin.protocol.startswith("SASL"):
        config |= {"sasl.mechanism": admin.mechanism, "sasl.username": admin.username,
                   "sasl.password": admin.password}
    return AdminClient(config)


def bindings(user: str) -> list[AclBinding]:
    """The ACL bindings of `user` from the table (allow, any host)."""
    return [AclBinding(_RESOURCE[g.resource], g.name, ResourcePatternType.LITERAL,
                       f"User:{kafka_acl.principal(user)}", "*", _OPERATION[g.operation],
                       AclPermissionType.ALLOW)
            for g in sorted(kafka_acl.ACLS[user])]


def setup_principals(admin: KafkaAccess, credentials: dict[str, str],
                     timeout_s: float = 30.0) -> None:
    """Upsert the SCRAM-SHA-512 user of every service in `credentials` and replace its ACLs by
    the table's (a user without a password here, e.g. KEDA's outside Kubernetes, is skipped).
    Raises KafkaException when the cluster refuses (e.g. `admin` is not a super user)."""
    client = _client(admin)
    users = [u for u in kafka_acl.USERS if u != kafka_acl.ADMIN and u in credentials]
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(kafka_acl.principal(u), info, credentials[u].encode())
        for u in users]
    for future in client.alter_user_scram_credentials(upserts).values():
        future.result(timeout_s)
    # None matches any name and any host (confluent-kafka's documented filter; its stub says str).
    anything = cast(str, None)
    stale = [AclBindingFilter(ResourceType.ANY, anything, ResourcePatternType.ANY,
                              f"User:{kafka_acl.principal(u)}", anything, AclOperation.ANY,
                              AclPermissionType.ANY) for u in users]
    for future in client.delete_acls(stale).values():
        future.result(timeout_s)
    wanted = [b for u in users for b in bindings(u)]
    for future in client.create_acls(wanted).values():
        future.result(timeout_s)


def credentials_from_env(environ: dict[str, str]) -> dict[str, str]:
    """user -> password from HOMEWARD_KAFKA_PASSWORD_<USER> (compose's `topics` job)."""
    users = [u for u in kafka_acl.USERS if u != kafka_acl.ADMIN]
    return {u: environ[f"HOMEWARD_KAFKA_PASSWORD_{u.upper()}"] for u in users
            if f"HOMEWARD_KAFKA_PASSWORD_{u.upper()}" in environ}


def _main(argv: list[str]) -> None:
    import os

    from shared.settings import Settings

    if argv[:1] == ["setup"] and len(argv) == 2:
        credentials = load_credentials(Path(argv[1]))
    elif argv == ["setup-env"]:
        credentials = credentials_from_env(dict(os.environ))
    else:
        raise SystemExit("usage: python -m shared.kafka_admin setup CREDENTIALS.json | setup-env")
    setup_principals(KafkaAccess.from_settings(Settings()), credentials)
    print("principals ready:", ", ".join(kafka_acl.principal(u) for u in credentials))


if __name__ == "__main__":
    import sys

    _main(sys.argv[1:])
