"""Per-contact {{variables}} in a campaign's welcome message, instructions and voicemail message."""

from __future__ import annotations

import re

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class MissingVariable(ValueError):
    """A text names a {{variable}} the contact list lacks; the message says which and where."""


def variables_in(text: str) -> set[str]:
    return set(VARIABLE.findall(text or ""))


def render(text: str, variables: dict[str, str], *, where: str = "the text") -> str:
    """`text` with every {{name}} replaced by the contact's value; MissingVariable names what is missing."""
    missing = sorted(variables_in(text) - set(variables))
    if missing:
        names = ", ".join("{{" + name + "}}" for name in missing)
        raise MissingVariable(
            f"{where} uses {names}, but the contact list has no such column. Add the column to the CSV, "
            f"or remove it from {where}."
        )
    return VARIABLE.sub(lambda m: str(variables.get(m.group(1), "")), text or "")


def render_prompt(assistant, variables: dict[str, str]) -> dict[str, str]:
    """The welcome message and instructions one contact's call runs with."""
    return {
        "welcome_message": render(assistant.welcome_message, variables, where="The welcome message"),
        "instructions": render(assistant.instructions, variables, where="The instructions"),
    }
