"""The platform's vital signs as JSON (``GET /ops/v1/system``) and its dead letters: inspect
and requeue them (``/ops/v1/system/dead_letters/...``). The console's ``/ops/system`` page
shows the same data, read by the same functions."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field
from tortoise.transactions import in_transaction

import queues
from api.http import Body, json_response
from api.keys import SETTINGS
from api.ops.billing import run_view
from api.ops.table import operator, ops_routes
from billing.errors import NotFound, ServiceUnavailable
from models.audit_log import Actor
from models.clock import Clock
from models.operations.system import database_vitals, name_requeued_actor, record_requeue
from settings import Settings

__all__ = ["dead_letter_view", "requeue", "vital_signs"]

BROKER_UNREACHABLE = "broker_unreachable"


async def vital_signs(settings: Settings) -> dict[str, Any]:
    """Every queue's depth (or why it cannot be read), the outbox backlog, the scheduler's
    jobs and the billing runs in progress."""
    state = await queues.read_broker(settings)
    database = await database_vitals()
    return {
        "broker": {
            "source": state.source,
            "reachable": state.reachable,
            "problem": state.problem,
            "queues": [dataclasses.asdict(depth) for depth in state.queues],
        },
        "outbox": {
            "backlog": database.outbox_backlog,
            "oldest_unsent_at": database.oldest_unsent_at,
            "oldest_unsent_seconds": database.oldest_unsent_seconds,
        },
        "scheduler": {
            "last_run_at": database.scheduler_last_run_at,
            "last_run_seconds_ago": (
                None
                if database.scheduler_last_run_at is None
                else max(round((Clock.system_now() - database.scheduler_last_run_at).total_seconds(), 1), 0.0)
            ),
            "jobs": [
                {
                    "name": job.name,
                    "last_run_at": job.last_run_at,
                    "last_done": job.last_done,
                    "last_error": job.last_error,
                    "last_ok_at": job.last_ok_at,
                    "failures": job.failures,
                }
                for job in database.jobs
            ],
        },
        "billing_runs": [run_view(run) for run in database.running],
    }


def dead_letter_view(letter: queues.DeadLetter) -> dict[str, Any]:
    """A dead letter as JSON."""
    return dataclasses.asdict(letter)


def known_queue(queue: str) -> str:
    """``queue`` if it is one of the platform's queues; 404 otherwise."""
    if queue not in queues.QUEUES:
        raise NotFound("No such queue.", param="queue", code="unknown_queue")
    return queue


async def dead_letters_of(settings: Settings, queue: str) -> list[queues.DeadLetter]:
    """The dead letters of ``queue``; ``ServiceUnavailable`` when the broker is down."""
    try:
        return await queues.dead_letters(settings, known_queue(queue))
    except NotFound:
        raise
    except Exception as error:
        raise ServiceUnavailable("The broker did not answer.", code=BROKER_UNREACHABLE) from error


async def requeue(settings: Settings, queue: str, message_id: str, *, actor: Actor, reason: str) -> queues.DeadLetter:
    """Put one dead letter back on its queue and write the audit entry (with the reason); the
    entry is written first, in the transaction that the broker's answer commits or undoes."""
    known_queue(queue)
    async with in_transaction():
        entry = await record_requeue(actor, queue=queue, message_id=message_id, reason=reason)
        try:
            letter = await queues.requeue_dead_letter(settings, queue, message_id)
        except Exception as error:
            raise ServiceUnavailable("The broker did not answer.", code=BROKER_UNREACHABLE) from error
        if letter is None:
            raise NotFound("No such dead letter.", param="message_id", code="dead_letter_missing")
        await name_requeued_actor(entry, letter.actor)
    return letter


class RequeueRequest(Body):
    """Why the dead letter goes back (kept in the audit log)."""

    reason: Annotated[str, Field(min_length=1, max_length=500, examples=["Merchant endpoint fixed"])]


@ops_routes.route("GET", "/system", summary="The platform's vital signs", errors=(401,))
async def get_system(request: web.Request) -> web.Response:
    """Queues (ready, unacknowledged, consumers, delayed, dead letters), outbox, scheduler, runs."""
    return json_response(await vital_signs(request.app[SETTINGS]))


@ops_routes.route("GET", "/system/dead_letters/{queue}", summary="A queue's dead letters", errors=(401, 404, 503))
async def list_dead_letters(request: web.Request) -> web.Response:
    """The first 50 dead letters of a queue: actor, args, message id and any traceback."""
    letters = await dead_letters_of(request.app[SETTINGS], request.match_info["queue"])
    return json_response({"object": "list", "data": [dead_letter_view(letter) for letter in letters]})


@ops_routes.route(
    "POST",
    "/system/dead_letters/{queue}/{message_id}/requeue",
    summary="Requeue a dead letter",
    body=RequeueRequest,
    errors=(400, 401, 404, 503),
)
async def requeue_dead_letter(request: web.Request, body: RequeueRequest) -> web.Response:
    """Put one dead letter back on its queue (same message id, a fresh retry budget)."""
    letter = await requeue(
        request.app[SETTINGS],
        request.match_info["queue"],
        request.match_info["message_id"],
        actor=operator(request),
        reason=body.reason,
    )
    return json_response(dead_letter_view(letter))
