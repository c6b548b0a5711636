"""Phone numbers in E.164, the one form we store and compare."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

_SEPARATORS = re.compile(r"[\s\-().\u00a0/]")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def normalize_e164(raw: str) -> str:
    """`+46 70-123 45 67`, `0046701234567` or `46701234567` → `+46701234567`; ValueError otherwise.

    46elks sends E.164, but people type numbers with spaces and dashes, and a trunk may drop the `+`.
    A leading single 0 is a national number and cannot be mapped without knowing the country.
    """
    text = _SEPARATORS.sub("", str(raw or ""))
    if text.startswith("00"):
        text = "+" + text[2:]
    elif text and text[0] in "123456789":
        text = "+" + text
    if not _E164.match(text):
        if text.startswith("0"):
            raise ValueError(f"{raw!r} looks like a national number: write it with the country code, e.g. +46…")
        raise ValueError(f"{raw!r} is not a phone number in international form (+ country code and number).")
    return text


def validate_e164(value: str) -> None:
    """Model/form validator with a message a non-developer can act on."""
    try:
        normalize_e164(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc
