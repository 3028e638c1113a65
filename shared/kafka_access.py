"""How a process reaches Kafka: the bootstrap servers and, on a SASL listener, its own
principal (issue 14), as keyword arguments for aiokafka's clients and FastStream's security."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from faststream.security import BaseSecurity, SASLScram512

if TYPE_CHECKING:
    from shared.settings import Settings

__all__ = ["Bootstrap", "KafkaAccess", "client_options"]


@dataclass(frozen=True)
class KafkaAccess:
    """How a process reaches Kafka: the bootstrap servers and, on a SASL listener, its own
    principal (SCRAM-SHA-512; one user per service, shared.kafka_acl). Built from settings by
    `from_settings`; `PLAINTEXT` (the default) needs no credentials."""

    bootstrap: str
    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    cafile: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaAccess:
        return cls(settings.kafka_bootstrap, settings.kafka_security_protocol,
                   settings.kafka_sasl_mechanism, settings.kafka_username,
                   settings.kafka_password.get_secret_value(),
                   str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer, consumer and admin client."""
        options: dict[str, Any] = {"bootstrap_servers": self.bootstrap,
                                   "security_protocol": self.protocol}
        if self.protocol.startswith("SASL"):
            options.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.username,
                           sasl_plain_password=self.password)
        if self.protocol.endswith("SSL"):
            options["ssl_context"] = ssl.create_default_context(cafile=self.cafile)
        return options

    def security(self) -> BaseSecurity | None:
        """FastStream's security object for `KafkaBroker(security=...)`."""
        if not self.protocol.startswith("SASL"):
            return None
        if self.protocol == "SASL_SSL":
            return SASLScram512(self.username, self.password,
                                ssl_context=ssl.create_default_context(cafile=self.cafile))
        return SASLScram512(self.username, self.password, use_ssl=False)


# Where a Kafka client connects: a bootstrap string (PLAINTEXT) or a KafkaAccess (a principal).
Bootstrap = str | KafkaAccess


def client_options(target: Bootstrap) -> dict[str, Any]:
    """aiokafka keyword arguments (bootstrap_servers and security) for `target`."""
    return (KafkaAccess(target) if isinstance(target, str) else target).client_options()
