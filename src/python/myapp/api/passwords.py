"""What a new password may not be, beyond its length (OWASP ASVS 4.0 2.1.7 and 2.1.9).

ASVS asks that new passwords be checked against commonly used and breached ones, and that there
be no composition rules (no "one digit and one capital"). So a password of 12 to 128 characters
is refused only when it is, ignoring case:

- one of the 20,000 most common passwords: Django's list (`common-passwords.txt.gz`, taken
  from the Django wheel that Pants downloads and checks; see the `common-passwords` targets in
  BUILD). Only its entries of 12 characters or more matter here; the shorter ones fail the
  length rule already;
- one character, or a short pattern, repeated ("aaaaaaaaaaaa", "abcabcabcabc");
- mostly the account's own e-mail address, or its part before the @.

Checked wherever a password is chosen: creating a user, an admin setting one, changing one's
own, and the first admin's ADMIN_PASSWORD in production. Not at login: existing passwords keep
working.
"""

from __future__ import annotations

import difflib
import gzip
import re
from functools import lru_cache

from myapp.api.errors import validation_error
from myapp.common.package_data import find_package_file

COMMON_PASSWORDS_FILE = "common-passwords.txt.gz"
_MIN_LENGTH = 12  # shorter ones are refused by the length rule (users.schemas.Password)
_MAX_SIMILARITY = 0.7


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The common passwords that pass the length rule, lowercased (read once per process)."""
    path = find_package_file(
        __package__ or "myapp.api", COMMON_PASSWORDS_FILE, "build through Pants (:common-passwords)"
    )
    words = gzip.decompress(path.read_bytes()).decode("utf-8", "replace").split()
    return frozenset(word.lower() for word in words if len(word) >= _MIN_LENGTH)


def _repeats_a_short_pattern(password: str) -> bool:
    # "abcabcabcabc": the whole string is one pattern of up to 4 characters, repeated.
    return re.fullmatch(r"(.{1,4}?)\1+", password, flags=re.DOTALL) is not None


def password_problem(password: str, email: str | None = None) -> str | None:
    """Why `password` may not be used for the account of `email`, or None when it may."""
    lowered = password.lower()
    if lowered in common_passwords():
        return "This is one of the most commonly used passwords; choose another"
    if _repeats_a_short_pattern(lowered):
        return "A repeated character or short pattern is easy to guess; choose another"
    if email and _resembles(lowered, email.lower()):
        return "The password is too similar to the e-mail address"
    return None


def _resembles(password: str, email: str) -> bool:
    # Mostly made of the address (or of its part before the @): "carol.jones-2024!" for
    # carol.jones@..., not "a real admin pw!" for admin@... (ratio as in Django's similarity check).
    local = email.split("@", 1)[0]
    return any(
        difflib.SequenceMatcher(a=password, b=value).quick_ratio() >= _MAX_SIMILARITY
        for value in {email, local}
        if value
    )


def check_new_password(password: str, email: str | None, field: str = "password") -> None:
    """Raise a 422 naming `field` when `password` may not be used."""
    problem = password_problem(password, email)
    if problem is not None:
        raise validation_error({field: problem}, f"{field}: {problem}")
