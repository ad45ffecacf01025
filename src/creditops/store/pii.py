"""Personal data in the decision log: sealed with Fernet before it is stored, opened only for
a reader allowed to see it.

The spec's ``pii`` fields (names, account numbers, free text) are never model inputs; the log
keeps them because a lender must show later whom a decision was about. They are stored as one
Fernet token per decision (AES-128-CBC with an HMAC-SHA256 tag, from ``cryptography``) in the
``predictions.pii`` column, so a copy of the database, a backup or an export of the table
shows no personal data without the key, and a token edited in place no longer opens.

Keys come from ``CREDITOPS_PII_KEY`` or the file ``CREDITOPS_PII_KEY_FILE`` names: one or more
Fernet keys separated by commas. The first seals; every one opens, so a key is rotated by
putting a new one first and keeping the old one until the tokens it sealed are purged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from creditops.config import Settings
from creditops.exceptions import PersonalDataError

__all__ = ["PiiCipher", "new_pii_key"]


def new_pii_key() -> str:
    """A fresh Fernet key (URL-safe base64 of 32 random bytes), for CREDITOPS_PII_KEY."""
    return Fernet.generate_key().decode("ascii")


class PiiCipher:
    """Seals and opens the personal data of one decision (a mapping of field to text)."""

    __slots__ = ("_fernet", "key_count")

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise PersonalDataError("no personal-data key given")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.strip().encode("ascii")))
            except (ValueError, UnicodeEncodeError):
                # Never the key itself in the message: only which one is wrong.
                raise PersonalDataError(
                    f"personal-data key #{position} is not a Fernet key (32 bytes in URL-safe "
                    "base64; `creditops keys pii-key` makes one)"
                ) from None
        self._fernet = MultiFernet(fernets)
        self.key_count = len(fernets)

    @classmethod
    def from_settings(cls, settings: Settings) -> PiiCipher | None:
        """The cipher for ``CREDITOPS_PII_KEY`` or ``CREDITOPS_PII_KEY_FILE``, or None when
        neither is set. Raises :class:`PersonalDataError` for an unreadable file or a bad key."""
        if settings.pii_key is not None:
            text = settings.pii_key.get_secret_value()
            source = "CREDITOPS_PII_KEY"
        elif settings.pii_key_file is not None:
            source = "CREDITOPS_PII_KEY_FILE"
            try:
                text = Path(settings.pii_key_file).read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not ASCII text"
                raise PersonalDataError(
                    f"{source}: cannot read {settings.pii_key_file}: {reason}"
                ) from None
        else:
            return None
        keys = [key for key in text.replace("\n", ",").split(",") if key.strip()]
        if not keys:
            raise PersonalDataError(f"{source} holds no key")
        try:
            return cls(keys)
        except PersonalDataError as exc:
            raise PersonalDataError(f"{source}: {exc}") from None

    def seal(self, values: Mapping[str, Any]) -> str:
        """One token holding ``values`` as JSON, sealed with the first key."""
        plain = json.dumps(dict(values), ensure_ascii=False, separators=(",", ":"))
        return self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def open(self, token: str) -> dict[str, Any]:
        """The values a token holds; :class:`PersonalDataError` when no key opens it (another
        key sealed it, or it was altered)."""
        try:
            plain = self._fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise PersonalDataError(
                "personal data cannot be opened: no configured key opens it (sealed with "
                "another key, or altered)"
            ) from None
        values = json.loads(plain)
        if not isinstance(values, dict):
            raise PersonalDataError("personal data cannot be opened: not a mapping")
        return values

    def __repr__(self) -> str:
        return f"PiiCipher(keys={self.key_count})"
