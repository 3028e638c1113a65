"""Settings shared by every service, read from the environment (prefix HOMEWARD_).

`Settings` is the one class every service constructs; its fields come in groups, one module per
concern (pydantic-settings models combined by inheritance, each field read from
HOMEWARD_<FIELD NAME>):

- process: environment, ports, what the process reaches, its limits, the display time zone
- access: bearer-token keys and the OpenID Connect provider (issues 12, 20)
- personal_data: the child-identity key, the PII master keys, purge grace (issues 13, 19)
- kafka_cluster: replication and this service's Kafka principal (issue 14)
- intake, dispatch, notify, verification: each service's own (issues 4, 5, 15-19)
"""

from __future__ import annotations

from shared.settings._base import (
    LOCAL_IDENTITY_FILE,
    LOCAL_PII_KEYS_FILE,
    LOCAL_SECRET_FILE,
    MIN_SECRET_BYTES,
    PUBLIC_SECRETS,
)
from shared.settings.access import AccessSettings
from shared.settings.dispatch import DispatchSettings
from shared.settings.intake import IntakeSettings
from shared.settings.kafka_cluster import KafkaClusterSettings
from shared.settings.notify import NotifySettings
from shared.settings.personal_data import PersonalDataSettings
from shared.settings.verification import VerificationSettings

__all__ = ["LOCAL_IDENTITY_FILE", "LOCAL_PII_KEYS_FILE", "LOCAL_SECRET_FILE", "MIN_SECRET_BYTES",
           "PUBLIC_SECRETS", "Settings"]


class Settings(IntakeSettings, DispatchSettings, NotifySettings, VerificationSettings,
               KafkaClusterSettings, PersonalDataSettings, AccessSettings):
    """Every setting of every service. The groups are listed in reverse of the order their
    checks run in (pydantic validates the last base first): the token key, the personal-data
    keys, then the Kafka replication."""
