"""Rule 12: text people type that ends up in an email is one line of bounded length without
control characters; anything already stored is made one safe line before it is quoted."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.typed_text import (
    NAME_MAX_LENGTH,
    REASON_MAX_LENGTH,
    one_line,
    text_problem,
)

REFUSED = {
    "empty": "",
    "too long": "x" * (NAME_MAX_LENGTH + 1),
    "line feed": "Dana\nyour account is locked",
    "carriage return + line feed": "Apollo\r\nBcc: victim@example.com",
    "tab": "Dana\tDev",
    "NUL": "Dana\x00",
    "escape sequence": "\x1b[31mDana",
    "C1 next line": "Dana\x85Dev",
    "line separator": "Dana\u2028Dev",
    "paragraph separator": "Dana\u2029Dev",
    "right-to-left override": "Dana \u202egnp.exe",
    "bidi isolate": "Dana \u2066Dev\u2069",
    "lone surrogate": "Dana \ud800",
}
ACCEPTED = {
    "plain": "Dana Dev",
    "accents and apostrophe": "Zoë O'Brien-Łukasz",
    "CJK": "李雷",
    "emoji": "Apollo 🚀",
    "zero-width non-joiner (Persian)": "می\u200cخواهم",
    "longest": "x" * NAME_MAX_LENGTH,
    "a URL is text like any other": "Migration of www.acme.example",
}


@pytest.mark.parametrize("text", REFUSED.values(), ids=REFUSED.keys())
def test_text_that_could_forge_an_email_is_refused(text: str) -> None:
    # When / Then
    assert text_problem(text, NAME_MAX_LENGTH)


@pytest.mark.parametrize("text", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_names_people_really_have_are_accepted(text: str) -> None:
    # When / Then
    assert text_problem(text, NAME_MAX_LENGTH) is None


def test_reasons_may_be_longer_than_names() -> None:
    assert text_problem("r" * REASON_MAX_LENGTH, REASON_MAX_LENGTH) is None
    assert text_problem("r" * (REASON_MAX_LENGTH + 1), REASON_MAX_LENGTH)


@given(st.text(min_size=1, max_size=600).filter(lambda s: s.strip()))
def test_any_stored_text_becomes_one_acceptable_line(text: str) -> None:
    # Given any text (stored before rule 12 existed, say) / When made one line for an email
    line = one_line(text, NAME_MAX_LENGTH)

    # Then it passes the rule, unless nothing printable was left of it
    assert text_problem(line, NAME_MAX_LENGTH) is None or line == ""


def test_one_line_keeps_acceptable_text_as_it_is() -> None:
    for text in ACCEPTED.values():
        assert one_line(text, NAME_MAX_LENGTH) == text
