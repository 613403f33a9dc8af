"""Passwords: argon2id hashes, and the generated initial passwords the carrier hands out.

Hashing costs tens of milliseconds of CPU on purpose; callers on an event loop use the async
forms, which run it on a bounded pool of threads (one per core) so the loop keeps serving and
a burst of sign-ins queues for the cores instead of crowding them.

The parameters are OWASP's (Password Storage Cheat Sheet): argon2id, m=46 MiB, t=1, p=1, about
45 ms of one core here. A hash made with other parameters still verifies; ``check_password``
then answers its replacement, which the caller stores with the sign-in's success.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

__all__ = [
    "PasswordCheck",
    "check_password",
    "generate_password",
    "hash_password",
    "seal_password",
    "store_rehash",
    "unseal_password",
    "verify_or_waste",
    "verify_password",
]

# OWASP's first argon2id line (m=46 MiB, t=1, p=1): ~45 ms of CPU per verify on this machine,
# where the library's default (RFC 9106 "low memory": 64 MiB, t=3, p=4) cost ~140-220 ms.
MEMORY_COST_KIB = 47104
TIME_COST = 1
PARALLELISM = 1
_hasher = PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB, parallelism=PARALLELISM)
# Sized to the cores: more threads would only share them, and argon2 holds 46 MiB per verify.
_executor = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="argon2")
# No 0/O, 1/l/I: the carrier prints the initial password on a letter and people type it.
_PASSWORD_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # noqa: S105 - an alphabet
PASSWORD_LENGTH = 12
_dummy_hash: str | None = None


def generate_password() -> str:
    """A random initial password of 12 unambiguous letters and digits (~70 bits)."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


async def hash_password(password: str) -> str:
    """The argon2id hash of ``password``, computed off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_executor, _hasher.hash, password)


@dataclass(frozen=True)
class PasswordCheck:
    """A password checked against ``checked_hash``: ``ok`` when it matches; ``new_hash`` its
    hash under today's parameters when it matched a hash made with others (else None)."""

    checked_hash: str
    ok: bool
    new_hash: str | None = None


class _HasPasswordHash(Protocol):
    password_hash: str


def _check(password_hash: str, password: str) -> PasswordCheck:
    try:
        ok = _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return PasswordCheck(password_hash, ok=False)
    new_hash = _hasher.hash(password) if ok and _hasher.check_needs_rehash(password_hash) else None
    return PasswordCheck(password_hash, ok=ok, new_hash=new_hash)


async def check_password(password_hash: str, password: str) -> PasswordCheck:
    """Verify ``password`` against ``password_hash`` off the event loop (and outside any
    transaction: the caller holds no lock), rehashing it when the parameters have changed."""
    return await asyncio.get_running_loop().run_in_executor(_executor, _check, password_hash, password)


def store_rehash(row: _HasPasswordHash, check: PasswordCheck) -> list[str]:
    """On a successful sign-in, put the rehashed password on ``row`` (locked by the caller, who
    saves it in the transaction recording the success) if the row still holds the hash that was
    checked. The fields to add to the save: ``["password_hash"]`` or none."""
    if not check.ok or check.new_hash is None or row.password_hash != check.checked_hash:
        return []
    row.password_hash = check.new_hash
    return ["password_hash"]


async def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``; never raises for a wrong password."""
    return (await check_password(password_hash, password)).ok


async def verify_or_waste(password_hash: str | None, password: str) -> PasswordCheck:
    """Check against the hash, or (no such user: None) against a throwaway one and answer not
    ok, so an unknown sign-in name costs the same time as a known one."""
    global _dummy_hash  # noqa: PLW0603 - computed once, on first need
    if password_hash is None:
        if _dummy_hash is None:
            _dummy_hash = await hash_password(secrets.token_urlsafe(16))
        await check_password(_dummy_hash, password)
        return PasswordCheck("", ok=False)
    return await check_password(password_hash, password)


def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(b"matomete/sealed-password/" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal_password(password: str, secret_key: str) -> str:
    """``password`` encrypted for the auth worker (who holds the same secret key)."""
    return _fernet(secret_key).encrypt(password.encode()).decode()


def unseal_password(sealed: str, secret_key: str) -> str | None:
    """The password sealed by ``seal_password``; None if it was sealed with another key."""
    try:
        return _fernet(secret_key).decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None
