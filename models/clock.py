"""The platform's one clock: every process asks ``await clock.now()``.

Normally it is the system's UTC time. Under ``MATOMETE_TEST_CLOCK=1`` it is the system's time
plus an offset kept in the database, so the web process, every worker and the scheduler see the
same moved clock, and time goes on flowing after a move (a 30-minute expiry still takes 30
minutes after the jump). The clock never goes backwards.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tortoise import fields
from tortoise.models import Model
from tortoise.transactions import in_transaction

__all__ = ["Clock", "ClockBackwards", "ClockState", "clock"]

ROW_ID = 1


class ClockBackwards(ValueError):
    """The test clock was asked to go back in time."""


class ClockState(Model):
    """The offset of the test clock from the system clock, one row."""

    id = fields.IntField(primary_key=True)
    offset_us = fields.BigIntField(default=0)

    class Meta:
        table = "test_clock"


class Clock:
    """System time, or system time plus the stored offset when the test clock is on."""

    def __init__(self) -> None:
        self.test_clock = False

    def configure(self, *, test_clock: bool) -> None:
        """Set once at start-up from ``Settings.test_clock``."""
        self.test_clock = test_clock

    @staticmethod
    def system_now() -> datetime:
        """The machine's time, in UTC."""
        return datetime.now(UTC)

    async def now(self) -> datetime:
        """The platform's time, timezone-aware UTC."""
        now = self.system_now()
        if not self.test_clock:
            return now
        state = await ClockState.get_or_none(id=ROW_ID)
        return now if state is None else now + timedelta(microseconds=state.offset_us)

    async def move_to(self, target: datetime) -> datetime:
        """Move the test clock to ``target``; refuse to go backwards."""
        if not self.test_clock:
            raise RuntimeError("the test clock is off (MATOMETE_TEST_CLOCK)")
        if target.tzinfo is None:
            raise ValueError("the time needs a UTC offset")
        async with in_transaction():
            state = await ClockState.select_for_update().get_or_none(id=ROW_ID)
            if state is None:
                state = await ClockState.create(id=ROW_ID, offset_us=0)
            system = self.system_now()
            current = system + timedelta(microseconds=state.offset_us)
            if target < current:
                raise ClockBackwards(f"the clock is at {current.isoformat()}; it never goes backwards")
            state.offset_us = (target - system) // timedelta(microseconds=1)
            await state.save(update_fields=["offset_us"])
        return target.astimezone(UTC)


clock = Clock()
