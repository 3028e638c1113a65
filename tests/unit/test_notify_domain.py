from datetime import timedelta

import pytest

from services.notify.domain import delivery_id, is_public_address, radius_km

TIERS = [(1.0, 100.0), (2.0, 200.0), (3.0, 300.0)]


@pytest.mark.parametrize(
    ("minutes", "km"),
    [(0, 100), (59, 100), (60, 100), (61, 200), (120, 200), (150, 300), (180, 300), (181, 500),
     (60 * 24, 500), (-5, 100)],
)
def test_radius_grows_with_time_missing(minutes: int, km: float) -> None:
    assert radius_km(timedelta(minutes=minutes), TIERS, 500.0) == km


def test_delivery_id_is_stable_per_alert_version_and_recipient() -> None:
    a = delivery_id("A-1", 1, "S1")
    assert a == delivery_id("A-1", 1, "S1")
    assert len({a, delivery_id("A-1", 2, "S1"), delivery_id("A-1", 1, "S2")}) == 3


@pytest.mark.parametrize(
    ("address", "public"),
    [("127.0.0.1", False), ("10.1.2.3", False), ("192.168.1.1", False), ("172.16.0.1", False),
     ("169.254.169.254", False), ("::1", False), ("0.0.0.0", False), ("8.8.8.8", True),
     ("2001:4860:4860::8888", True)],
)
def test_ssrf_classification(address: str, public: bool) -> None:
    assert is_public_address(address) is public
