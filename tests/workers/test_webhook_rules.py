"""The webhook retry schedule and the outbound address rules, without a network."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from models.operations.webhooks import RETRY_SCHEDULE, UnsafeDestination, check_destination, retry_delay


def test_schedule_spans_about_three_days() -> None:
    """Nine waits from 5 seconds to 24 hours add up to about three days."""
    total = sum(RETRY_SCHEDULE, timedelta())
    assert timedelta(days=3) <= total <= timedelta(days=3, hours=6)
    assert RETRY_SCHEDULE[0] == timedelta(seconds=5)
    assert retry_delay(len(RETRY_SCHEDULE) + 1) is None


def test_jitter_stays_within_a_fifth() -> None:
    """Each wait is within ±20% of its scheduled value."""
    rng = random.Random(7)
    for attempt, base in enumerate(RETRY_SCHEDULE, start=1):
        for _ in range(20):
            delay = retry_delay(attempt, rng)
            assert delay is not None
            assert base * 0.8 <= delay <= base * 1.2


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/x",
        "https://10.0.0.1/x",
        "https://172.16.5.4/x",
        "https://169.254.169.254/x",
        "https://[fe80::1]/x",
        "https://[::1]/x",
        "http://203.0.113.10/x",
        "ftp://203.0.113.10/x",
    ],
)
async def test_unsafe_destinations(url: str) -> None:
    """Internal addresses and non-https schemes are refused in the strict mode."""
    with pytest.raises(UnsafeDestination):
        await check_destination(url, allow_insecure=False)


async def test_public_https_and_insecure_mode() -> None:
    """A public https address passes; the insecure mode allows http to this machine."""
    await check_destination("https://8.8.8.8/hook", allow_insecure=False)
    await check_destination("http://127.0.0.1:8000/hook", allow_insecure=True)
    with pytest.raises(UnsafeDestination):
        await check_destination("ftp://127.0.0.1/hook", allow_insecure=True)
