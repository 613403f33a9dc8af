"""A process's own broker connection that RabbitMQ dropped (an idle blocking connection misses
its heartbeats and is closed after a minute) is replaced on next use, not left to fail every
later publish or declare (queues.refresh_connection)."""

from __future__ import annotations

import socket

import pytest

import queues
from settings import Settings


def test_a_dropped_connection_is_replaced_on_next_use(settings: Settings) -> None:
    """With this thread's connection cut under it, declaring the queues opens a new one."""
    if not settings.broker_url.startswith("amqp"):
        pytest.skip("the in-process broker has no connection to lose")
    queues.declare_queues()
    first = queues.broker.connection
    first._impl._transport._sock.shutdown(socket.SHUT_RDWR)  # the peer's reset, as RabbitMQ's close looks
    queues.declare_queues()
    second = queues.broker.connection
    assert second is not first
    assert second.is_open
    queues.broker.flush_all()  # and it works
