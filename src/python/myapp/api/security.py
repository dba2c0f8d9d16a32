"""Passwords (bcrypt over a SHA-256 pre-hash), access JWTs and refresh-token material.

Passwords: bcrypt only reads the first 72 bytes of its input, and the contract allows 128
characters (up to 512 UTF-8 bytes). We never truncate: the password is first hashed with SHA-256
and the base64 of that digest (44 ASCII bytes, no NUL) is what bcrypt hashes. Stored format is
bcrypt's own ``$2b$<cost>$...`` string.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import jwt

SCOPES_BY_ROLE: dict[str, tuple[str, ...]] = {
    "admin": (
        "users:read",
        "users:write",
        "rules:read",
        "rules:write",
        "audit:read",
        "fastpath:read",
        "fastpath:write",
    ),
    "maintainer": ("rules:read", "rules:write", "fastpath:read", "fastpath:write"),
    "viewer": ("rules:read", "fastpath:read"),
}
ALL_SCOPES = SCOPES_BY_ROLE["admin"]
JWT_ALGORITHM = "HS256"


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def hash_password(password: str, rounds: int) -> str:
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds=rounds)).decode("ascii")


def verify_password(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(_prehash(password), hashed.encode("ascii"))
    except ValueError:  # malformed stored hash
        return False


def needs_rehash(hashed: str, rounds: int) -> bool:
    """True when the stored hash uses a different cost than configured."""
    try:
        return int(hashed.split("$")[2]) != rounds
    except (IndexError, ValueError):
        return True


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    role: str
    scopes: tuple[str, ...]
    token_version: int
    session_id: str
    jti: str


class TokenError(Exception):
    """The access token is invalid; the message says why (safe to show the client)."""


# Seconds of clock skew accepted on exp/nbf/iat.
LEEWAY = 5


class TokenService:
    """Issues and verifies HS256 access tokens with iss/aud/iat/exp/jti/sub/role/scopes.

    A client sends the same token with every request until it expires, so the verified claims
    of recent tokens are remembered (by the exact token string, until its ``exp``): checking the
    signature and decoding again would give the same answer. Expiry is checked on every use;
    whether the session behind the token is still valid is not this class's business (see
    auth/principal.py).
    """

    def __init__(
        self, secret: str, issuer: str, audience: str, ttl: int, remember: int = 10_000
    ) -> None:
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl
        self._remember = remember
        self._verified: dict[str, tuple[float, AccessClaims]] = {}
        self._lock = threading.Lock()

    def issue(
        self, user_id: int, role: str, token_version: int, session_id: str, ttl: int | None = None
    ) -> str:
        """A signed access token valid `ttl` seconds (default: the service's)."""
        now = datetime.now(UTC)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "iat": now,
            "nbf": now,
            "exp": now + timedelta(seconds=self.ttl if ttl is None else ttl),
            "jti": uuid.uuid4().hex,
            "role": role,
            "scopes": list(SCOPES_BY_ROLE[role]),
            "ver": token_version,
            "sid": session_id,
        }
        return jwt.encode(claims, self._secret, algorithm=JWT_ALGORITHM)

    def verify(self, token: str) -> AccessClaims:
        """The claims of a valid token; TokenError saying what is wrong otherwise."""
        known = self._verified.get(token)
        if known is not None:
            if time.time() < known[0]:
                return known[1]
            with self._lock:  # writers hold the lock: eviction below iterates the dict
                self._verified.pop(token, None)
        expires, claims = self._decode(token)
        with self._lock:
            if len(self._verified) >= self._remember:
                self._verified.pop(next(iter(self._verified)))  # the oldest insertion
            self._verified[token] = (expires, claims)
        return claims

    def _decode(self, token: str) -> tuple[float, AccessClaims]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[JWT_ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
                leeway=LEEWAY,
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("Access token expired") from None
        except jwt.InvalidAudienceError:
            raise TokenError("Access token has the wrong audience") from None
        except jwt.InvalidIssuerError:
            raise TokenError("Access token has the wrong issuer") from None
        except jwt.InvalidAlgorithmError:
            raise TokenError("Access token algorithm not allowed") from None
        except jwt.InvalidSignatureError:
            raise TokenError("Access token signature is invalid") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"Access token is invalid: {exc}") from None
        try:
            role = str(claims["role"])
            scopes = tuple(str(s) for s in claims["scopes"])
            if role not in SCOPES_BY_ROLE or not set(scopes) <= set(SCOPES_BY_ROLE[role]):
                raise ValueError
            # PyJWT accepts a token while now < exp + leeway: so does the cache.
            return float(claims["exp"]) + LEEWAY, AccessClaims(
                user_id=int(claims["sub"]),
                role=role,
                scopes=scopes,
                token_version=int(claims["ver"]),
                session_id=str(claims["sid"]),
                jti=str(claims["jti"]),
            )
        except (KeyError, TypeError, ValueError):
            raise TokenError("Access token claims are malformed") from None


def new_refresh_token() -> tuple[str, str]:
    """A random 256-bit refresh token and the SHA-256 hex digest that is stored instead."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_family_id() -> str:
    return uuid.uuid4().hex
