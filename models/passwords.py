"""Passwords: argon2id hashes, and the generated initial passwords the carrier hands out.

Hashing costs tens of milliseconds of CPU on purpose; callers on an event loop use the async
forms, which run it on a thread so the loop keeps serving.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken

__all__ = [
    "generate_password",
    "hash_password",
    "seal_password",
    "unseal_password",
    "verify_or_waste",
    "verify_password",
]

_hasher = PasswordHasher()  # argon2id, the library's RFC 9106 "low memory" profile
# No 0/O, 1/l/I: the carrier prints the initial password on a letter and people type it.
_PASSWORD_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # noqa: S105 - an alphabet
PASSWORD_LENGTH = 12
_dummy_hash: str | None = None


def generate_password() -> str:
    """A random initial password of 12 unambiguous letters and digits (~70 bits)."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


async def hash_password(password: str) -> str:
    """The argon2id hash of ``password``, computed off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, _hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``; never raises for a wrong password."""

    def check() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.get_running_loop().run_in_executor(None, check)


async def verify_or_waste(password_hash: str | None, password: str) -> bool:
    """Verify against the hash, or (no such user: None) against a throwaway one and answer
    False, so an unknown sign-in name costs the same time as a known one."""
    global _dummy_hash  # noqa: PLW0603 - computed once, on first need
    if password_hash is None:
        if _dummy_hash is None:
            _dummy_hash = await hash_password(secrets.token_urlsafe(16))
        await verify_password(_dummy_hash, password)
        return False
    return await verify_password(password_hash, password)


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
