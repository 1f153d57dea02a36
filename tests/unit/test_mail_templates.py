"""Rule 12 in the emails: text people typed (names, project names, reasons, who changed what) is
shown as quoted data, never as the service's own words; subjects are one line.

Every template is rendered with typed text written to look like the service talking (line breaks,
a link, HTML), as text stored before rule 12 existed could be; the text and HTML parts are both
checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser

import pytest

from chalicelib.domain.typed_text import is_control
from chalicelib.mail import templates
from chalicelib.mail.templates import Email

PORTAL = "https://helpdesk.example/servicedesk/customer/portals"
RESET = "https://helpdesk.example/servicedesk/customer/user/forgotpassword"
# What an attacker would like the recipient to read as the service's words.
FORGED = "Your account is locked. Re-enter your password at http://evil.example/login"
HOSTILE_NAME = f"Dana\n\n{FORGED}\n"
HOSTILE_PROJECT = 'Apollo\r\nBcc: victim@example.com <script>alert(1)</script> "quoted” end'
HOSTILE_REASON = f"Incident 42\r\n\r\n{FORGED}"
HOSTILE_ACTOR = f"carla@acme.example\n{FORGED}"
MARKERS = ("locked", "evil.example", "Bcc", "script", "victim")

RENDER: dict[str, Callable[[str, str, str], Email]] = {
    "activation": lambda name, project, _: templates.activation(name, project, PORTAL),
    "password reset": lambda name, project, _: templates.password_reset(name, project, RESET),
    "expiry reminder": lambda name, project, _: templates.expiry_reminder(
        name, project, "2026-06-08T12:00:00.000Z"
    ),
    "support access enabled": lambda name, project, reason: templates.support_access_changed(
        project, "apollo", True, reason, name
    ),
    "support access disabled": lambda name, project, reason: templates.support_access_changed(
        project, "apollo", False, None, name
    ),
    "access request approved": lambda name, project, reason: templates.access_request_decision(
        name, project, True, reason, "2026-06-08T12:00:00.000Z"
    ),
    "access request denied": lambda name, project, reason: templates.access_request_decision(
        name, project, False, reason, None
    ),
}
QUOTED = re.compile(r"“[^“”]*”")


class _Text(HTMLParser):
    """The text a mail client shows for an HTML part, and the links it has."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.links: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "a":
            self.links.extend(value or "" for name, value in attrs if name == "href")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def shown(html: str) -> _Text:
    parser = _Text()
    parser.feed(html)
    return parser


def outside_quotes(text: str) -> str:
    """What the service says in its own words: everything but the quoted data."""
    return QUOTED.sub("", text)


@pytest.mark.parametrize("render", RENDER.values(), ids=RENDER.keys())
def test_typed_text_is_quoted_data_in_the_text_part(render: Callable[..., Email]) -> None:
    # When a template is rendered with hostile typed text
    email = render(HOSTILE_NAME, HOSTILE_PROJECT, HOSTILE_REASON)

    # Then the subject is one line without control characters
    assert not any(is_control(c) for c in email.subject)
    # And outside the quoted data, nothing of what was typed appears
    own_words = outside_quotes(email.subject + "\n" + email.text)
    for marker in MARKERS:
        assert marker not in own_words, (marker, email.text)
    # And every quoted value is on one line (no paragraph of its own)
    for value in QUOTED.findall(email.text):
        assert not any(is_control(c) for c in value), value


@pytest.mark.parametrize("render", RENDER.values(), ids=RENDER.keys())
def test_typed_text_is_quoted_escaped_data_in_the_html_part(render: Callable[..., Email]) -> None:
    # When a template is rendered with hostile typed text
    email = render(HOSTILE_NAME, HOSTILE_PROJECT, HOSTILE_REASON)
    html = shown(email.html)

    # Then no tag came from the typed text, the only links are the service's own
    assert "script" not in html.tags
    assert set(html.links) <= {PORTAL, RESET}
    # And what the reader sees outside the quoted data is the service's own words only
    own_words = outside_quotes("".join(html.text))
    for marker in MARKERS:
        assert marker not in own_words, (marker, email.html)


def test_the_actor_of_a_support_change_is_quoted_too() -> None:
    # When the support team's email is rendered with a forged actor
    email = templates.support_access_changed("Apollo", "apollo", True, "Incident", HOSTILE_ACTOR)

    # Then the actor is data, in both parts
    for part in (email.text, "".join(shown(email.html).text)):
        assert "locked" not in outside_quotes(part)


@pytest.mark.parametrize("render", RENDER.values(), ids=RENDER.keys())
def test_ordinary_values_are_shown_quoted_in_both_parts(render: Callable[..., Email]) -> None:
    # When a template is rendered with ordinary values
    email = render("carla@acme.example", "Apollo", "Imports fail since Monday")

    # Then the project is named in the subject, and each value is shown once, quoted
    assert email.subject.endswith("“Apollo”")
    for part in (email.text, "".join(shown(email.html).text)):
        assert "“Apollo”" in part
        assert QUOTED.findall(part)


def test_the_activation_email_names_the_person_and_links_the_helpdesk() -> None:
    email = templates.activation("Dana Dev", "Apollo", PORTAL)
    assert "“Dana Dev”" in email.text
    assert PORTAL in email.text
    assert shown(email.html).links == [PORTAL]


def test_the_reset_email_links_the_forgot_password_page() -> None:
    email = templates.password_reset("Dana Dev", "Apollo", RESET)
    assert "“Dana Dev”" in email.text
    assert RESET in email.text
    assert shown(email.html).links == [RESET]


def test_the_expiry_reminder_says_when_access_ends_in_both_parts() -> None:
    # When the reminder is rendered for an expiry
    email = templates.expiry_reminder("Dana Dev", "Apollo", "2026-06-08T12:00:00.000Z")

    # Then subject, text and HTML say when, the person and project are quoted data, no link
    assert email.subject == "Your helpdesk access ends on 2026-06-08 12:00 UTC for “Apollo”"
    html = shown(email.html)
    for part in (email.text, "".join(html.text)):
        assert "ends on 2026-06-08 12:00 UTC" in part
        assert "Project: “Apollo”" in part or "Project“Apollo”" in part
        assert "“Dana Dev”" in part
    assert html.links == []


def test_the_support_email_says_why_only_when_enabled() -> None:
    enabled = templates.support_access_changed("Apollo", "apollo", True, "Incident 42", "c@a.ex")
    disabled = templates.support_access_changed("Apollo", "apollo", False, None, "c@a.ex")
    assert "“Incident 42”" in enabled.text
    assert "Reason" not in disabled.text
    assert "enabled" in enabled.subject
    assert "disabled" in disabled.subject
    assert "apollo" in enabled.text


def test_quotes_in_typed_text_cannot_close_the_quotation() -> None:
    # When a name carries the closing quotation mark followed by words of its own
    email = templates.activation("Dana” Your account is locked “", "Apollo", PORTAL)

    # Then those words stay inside the quoted data
    assert "locked" not in outside_quotes(email.text)
    assert "locked" not in outside_quotes("".join(shown(email.html).text))


def test_the_access_request_decision_says_the_outcome_and_quotes_the_reason() -> None:
    approved = templates.access_request_decision(
        "Dana Dev", "Apollo", True, "Import team", "2026-06-08T12:00:00.000Z"
    )
    denied = templates.access_request_decision("Dana Dev", "Apollo", False, "Import team", None)
    assert approved.subject == "Your helpdesk access request was approved for “Apollo”"
    assert "Your reason: “Import team”" in approved.text
    assert "ends on 2026-06-08 12:00 UTC" in approved.text
    assert "2026-06-08 12:00 UTC" in "".join(shown(approved.html).text)
    assert denied.subject.startswith("Your helpdesk access request was denied")
    assert "“Import team”" in "".join(shown(denied.html).text)
