"""Rule 12: text people type that ends up in an email (contact and project names, reasons).

Such text is one line of 1..200 characters (reasons 1..500) without control characters: no line
breaks to start a paragraph or a header of its own, no escape sequences, no bidi controls that
reorder what a reader sees. `text_problem` is the rule for input; `one_line` makes any stored
text (written before the rule existed) one safe line before an email quotes it.
"""

from __future__ import annotations

import unicodedata

NAME_MAX_LENGTH = 200
REASON_MAX_LENGTH = 500

# Cc: C0/C1 controls (CR, LF, TAB, ESC, NEL…); Zl/Zp: Unicode line and paragraph separators;
# Cs: lone surrogates (JSON can carry them; no email can).
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})
# Bidi embeddings, overrides and isolates: they make "exe.gnp" read as "png.exe".
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
SINGLE_LINE = "must be a single line without control characters"


def is_control(char: str) -> bool:
    """Whether `char` is a line break, a control or a bidi control (never shown in an email)."""
    return char in _BIDI_CONTROLS or unicodedata.category(char) in _CONTROL_CATEGORIES


def text_problem(value: str, max_length: int, min_length: int = 1) -> str | None:
    """Why `value` may not be used as typed text of `min_length..max_length` characters, or None."""
    if not min_length <= len(value) <= max_length:
        return f"must be {min_length} to {max_length} characters"
    if any(is_control(char) for char in value):
        return SINGLE_LINE
    return None


def one_line(value: str, max_length: int) -> str:
    """`value` with each control replaced by a space, trimmed and cut to `max_length` (with "…")."""
    line = " ".join("".join(" " if is_control(c) else c for c in value).split())
    if len(line) > max_length:
        line = line[: max_length - 1].rstrip() + "…"
    return line
