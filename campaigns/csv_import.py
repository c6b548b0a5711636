"""Reading a contact list (CSV) into rows checked one by one, for a preview before anything is saved."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from assistants.phone import normalize_e164

from .rendering import variables_in

NUMBER_COLUMNS = ("number", "phone", "phone_number", "telephone")
TIME_ZONE_COLUMN = "time_zone"
MAX_ROWS = 50_000


@dataclass
class Row:
    line: int  # the line in the file (the header is line 1)
    number: str
    variables: dict[str, str]
    time_zone: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class ParsedList:
    columns: list[str]
    rows: list[Row]
    errors: list[str]  # problems with the whole file

    @property
    def good(self) -> list[Row]:
        return [row for row in self.rows if row.ok]

    @property
    def bad(self) -> list[Row]:
        return [row for row in self.rows if not row.ok]


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def parse_contacts(data: bytes, *, needed: set[str] = frozenset(), existing: set[str] = frozenset()) -> ParsedList:
    """Check every row: a valid number (E.164 after normalising), not twice, a known time zone.

    `needed` are the {{variables}} the campaign's texts use: a list lacking one is refused whole,
    with one clear message. `existing` are numbers already in the campaign (duplicates too).
    """
    text = _decode(data)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = next(reader, None)
    if not header:
        return ParsedList([], [], ["The file is empty: the first line must name the columns, e.g. number,first_name."])
    columns = [c.strip().lower().replace(" ", "_") for c in header]
    number_column = next((c for c in NUMBER_COLUMNS if c in columns), None)
    errors = []
    if number_column is None:
        errors.append(f"No number column: name one column “number” (found: {', '.join(columns) or 'none'}).")
    missing = sorted(needed - set(columns))
    if missing:
        names = ", ".join("{{" + m + "}}" for m in missing)
        errors.append(f"The assistant's texts use {names}, but the list has no such column. Add it to the CSV.")
    if len(set(columns)) != len(columns):
        errors.append("Two columns have the same name: give each column its own name.")
    if errors:
        return ParsedList(columns, [], errors)
    rows: list[Row] = []
    seen = set(existing)
    for line, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        if len(rows) >= MAX_ROWS:
            errors.append(f"Only the first {MAX_ROWS} rows are read: split the list into several campaigns.")
            break
        cells = {c: (values[i].strip() if i < len(values) else "") for i, c in enumerate(columns)}
        raw_number = cells.pop(number_column)
        time_zone = cells.pop(TIME_ZONE_COLUMN, "")
        row = Row(line, raw_number, cells, time_zone)
        if len(values) > len(columns):
            row.errors.append(f"{len(values)} values for {len(columns)} columns.")
        try:
            row.number = normalize_e164(raw_number)
        except ValueError as exc:
            row.errors.append(str(exc) if raw_number else "No number.")
        else:
            if row.number in seen:
                row.errors.append(f"{row.number} is already in the list.")
            seen.add(row.number)
        for name in sorted(needed):
            if not cells.get(name):
                row.errors.append(f"{{{{{name}}}}} is empty.")
        if time_zone:
            try:
                ZoneInfo(time_zone)
            except (ZoneInfoNotFoundError, ValueError):
                row.errors.append(f"Unknown time zone {time_zone!r} (use e.g. Europe/Stockholm).")
        rows.append(row)
    if not rows and not errors:
        errors.append("The file has a header but no contacts.")
    return ParsedList(columns, rows, errors)


def needed_variables(campaign) -> set[str]:
    """The {{variables}} a campaign's texts use: its assistant's welcome message and instructions, its voicemail."""
    assistant = campaign.assistant
    return (
        variables_in(assistant.welcome_message)
        | variables_in(assistant.instructions)
        | variables_in(campaign.voicemail_message)
    )
