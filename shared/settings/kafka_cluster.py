"""Settings of the Kafka cluster and this service's principal on it (issue 14): replication of
every topic (shared.topic_policy) and the SASL/SCRAM credentials (shared.kafka_acl)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from shared.settings._base import SettingsGroup

__all__ = ["KafkaClusterSettings"]


class KafkaClusterSettings(SettingsGroup):
    kafka_replication_factor: int = Field(
        default=1, ge=1, description="replicas of every topic: 1 on one local broker, 3 in "
        "production (shared.topic_policy)")
    kafka_min_insync_replicas: int = Field(
        default=1, ge=1, description="min.insync.replicas of every topic: 1 locally, 2 in "
        "production; with acks=all a write needs this many replicas")
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_username: str = Field(
        default="", description="this service's Kafka principal (shared.kafka_acl.USERS)")
    kafka_password: SecretStr = SecretStr("")
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="CA certificate of a SASL_SSL listener (Kubernetes: the "
        "Strimzi cluster CA); None: the system's trust store")

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> Self:
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise ValueError("HOMEWARD_KAFKA_MIN_INSYNC_REPLICAS exceeds "
                             "HOMEWARD_KAFKA_REPLICATION_FACTOR: no write could ever succeed")
        return self
