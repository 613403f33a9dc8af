"""Two ways to run the fault scenario: over HTTP against real processes (``Deployed``), or in
this process against the test app with an in-process worker (``InProcess``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from fault_scenario import CSRF


class HttpPlatform:
    """The public surfaces over HTTP at ``base_url``."""

    def __init__(self, base_url: str, *, deadline: float = 90.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.deadline = deadline
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.session.close()

    async def request(self, method: str, path: str, *, key: str, json: Any = None) -> tuple[int, Any]:
        """An API request with ``key`` as the bearer."""
        headers = {"Authorization": f"Bearer {key}"}
        async with self.session.request(method, self.base_url + path, headers=headers, json=json) as response:
            return response.status, await response.json()

    async def confirm(self, confirmation_url: str, *, login_id: str, password: str, address: str) -> int:
        """A browser of its own (its own cookies) at ``address``, behind the trusted local proxy."""
        url = self.base_url + urlsplit(confirmation_url).path
        headers = {"X-Forwarded-For": address}
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            async with browser.get(url, headers=headers) as page:
                text = await page.text()
                assert page.status == 200, text[:500]
            token = CSRF.search(text)
            assert token is not None
            form = {"login_id": login_id, "password": password, "csrf_token": token.group(1), "action": "confirm"}
            async with browser.post(url, data=form, headers=headers, allow_redirects=False) as answer:
                return answer.status

    async def move_clock(self, moment: str) -> None:
        """POST /ops/v1/clock."""
        from fault_scenario import ok

        await ok(self, "POST", "/ops/v1/clock", key=self.ops_token, json={"now": moment})

    ops_token = ""
    steps: asyncio.Queue[str] | None = None  # where the story's steps are reported, when anyone listens

    async def step(self, name: str) -> None:
        """The story reached ``name`` (the fault harness aims kills at the work it sets off)."""
        if self.steps is not None:
            self.steps.put_nowait(name)

    async def work(self) -> None:
        """One step of the platform's own work while waiting (nothing: its processes do it)."""
        await asyncio.sleep(0.2)

    async def until(self, done: Callable[[], Awaitable[bool]], *, what: str) -> None:
        """Poll ``done`` until it holds; fail at the deadline."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.deadline
        while not await done():
            assert loop.time() < end, f"the platform did not reach: {what}"
            await self.work()

    async def rows(self, sql: str) -> list[dict[str, Any]]:
        """Rows of a read-only query."""
        raise NotImplementedError


class Deployed(HttpPlatform):
    """Real processes; the database read directly with asyncpg."""

    def __init__(self, base_url: str, database_url: str, ops_token: str, *, deadline: float = 120.0) -> None:
        super().__init__(base_url, deadline=deadline)
        self.database_url = database_url.replace("postgres://", "postgresql://", 1)
        self.ops_token = ops_token
        self._connection: Any = None

    async def rows(self, sql: str) -> list[dict[str, Any]]:
        """Rows of a read-only query (one connection, reopened if it breaks)."""
        import asyncpg

        if self._connection is None or self._connection.is_closed():
            self._connection = await asyncpg.connect(self.database_url)
        return [dict(row) for row in await self._connection.fetch(sql)]

    async def close(self) -> None:
        """Close the HTTP session and the database connection."""
        await super().close()
        if self._connection is not None:
            await self._connection.close()


class InProcess(HttpPlatform):
    """The test app on the test server, with the in-process worker; this platform relays the
    outbox and runs the scheduler's jobs itself while it waits."""

    def __init__(self, base_url: str, settings: Any, ops_token: str) -> None:
        super().__init__(base_url, deadline=60.0)
        import queues

        self.publisher = queues.publisher_for(settings)
        self.ops_token = ops_token

    async def work(self) -> None:
        """Run the due jobs and relay what they and the requests wrote."""
        import queues
        from workers.scheduler import run_due_jobs

        await run_due_jobs()
        while await queues.relay_once(self.publisher):
            pass
        await asyncio.sleep(0.02)

    async def move_clock(self, moment: str) -> None:
        """Move the clock and run what fell due."""
        await super().move_clock(moment)
        await self.work()

    async def rows(self, sql: str) -> list[dict[str, Any]]:
        """Rows through the ORM's connection."""
        from tortoise import connections

        return list(await connections.get("default").execute_query_dict(sql))
