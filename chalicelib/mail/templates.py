"""The email texts: plain text and HTML of each message.

Rule 12: what people typed (names, project names, reasons, the actor's address) is never part of
the service's sentences. It is shown as labelled, quoted data — “like this” — made one line first
(`domain.typed_text.one_line`: text stored before the rule may hold line breaks), with any
quotation mark of its own straightened so it cannot close the quotation, and HTML-escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from ..domain.typed_text import NAME_MAX_LENGTH, REASON_MAX_LENGTH, one_line

OPEN_QUOTE, CLOSE_QUOTE = "“", "”"
# The actor's address comes from the console's token; an address has at most 254 characters.
ADDRESS_MAX_LENGTH = 254


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class _Fact:
    """One labelled value people typed, shown quoted."""

    label: str
    value: str

    @property
    def text(self) -> str:
        return f"{self.label}: {self.value}"

    @property
    def html(self) -> str:
        return f'<tr><th align="left">{escape(self.label)}</th><td>{escape(self.value)}</td></tr>'


def quoted(value: str | None, max_length: int = NAME_MAX_LENGTH) -> str:
    """`value` as quoted data: one line, bounded, its own quotation marks straightened."""
    line = one_line(value or "", max_length)
    line = line.replace(OPEN_QUOTE, '"').replace(CLOSE_QUOTE, '"')
    return f"{OPEN_QUOTE}{line}{CLOSE_QUOTE}"


def _render(
    subject: str,
    before: list[str],
    facts: list[_Fact],
    after: list[str],
    link: tuple[str, str] | None = None,
) -> Email:
    """Text and HTML of a message: the service's paragraphs around a block of quoted facts."""
    block = "\n".join(fact.text for fact in facts)
    paragraphs = [*before, block, *after]
    if link:
        paragraphs.append(f"{link[0]}: {link[1]}")
    text = "\n\n".join(paragraphs) + "\n"

    body = "".join(f"<p>{escape(p)}</p>" for p in before)
    body += f'<table role="presentation">{"".join(f.html for f in facts)}</table>'
    body += "".join(f"<p>{escape(p)}</p>" for p in after)
    if link:
        body += f'<p><a href="{escape(link[1], quote=True)}">{escape(link[0])}</a></p>'
    html = (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(subject)}</title>'
        f"</head><body>{body}</body></html>"
    )
    return Email(subject, text, html)


def activation(name: str, project_name: str, portal_url: str) -> Email:
    project = quoted(project_name)
    return _render(
        f"Your helpdesk access for {project}",
        [
            "Hello,",
            "You can now open requests on the helpdesk of a project. "
            "As they are written in the project console:",
        ],
        [_Fact("Project", project), _Fact("Your name", quoted(name))],
        [
            "Your helpdesk account is separate from the portal: the first time you sign in, "
            'choose "Forgot your password?" to set your helpdesk password.',
        ],
        ("Open the helpdesk", portal_url),
    )


def password_reset(name: str, project_name: str, reset_url: str) -> Email:
    project = quoted(project_name)
    return _render(
        f"Reset your helpdesk password for {project}",
        [
            "Hello,",
            "A project manager asked us to help you reset your helpdesk password. "
            "As they are written in the project console:",
        ],
        [_Fact("Project", project), _Fact("Your name", quoted(name))],
        ["Follow the link, enter your email address and the helpdesk sends you a reset link."],
        ("Reset your password", reset_url),
    )


def support_access_changed(
    project_name: str, project_id: str, enabled: bool, reason: str | None, actor_email: str
) -> Email:
    state = "enabled" if enabled else "disabled"
    project = quoted(project_name)
    facts = [
        _Fact("Project", project),
        _Fact("Project id", project_id),  # an id of [A-Za-z0-9._-]: not typed text
        _Fact("Changed by", quoted(actor_email, ADDRESS_MAX_LENGTH)),
    ]
    if enabled:
        facts.append(_Fact("Reason", quoted(reason or "-", REASON_MAX_LENGTH)))
    return _render(
        f"Support access {state} on {project}",
        [f"Support access was {state} on a project. As written in the project console:"],
        facts,
        [],
    )


def expiry_reminder(name: str, project_name: str, expires_at: str) -> Email:
    """The contact's access ends at `expires_at` (an `iso` timestamp: the service's own value)."""
    project = quoted(project_name)
    ends = expires_at.replace("T", " ").removesuffix("Z")[:16] + " UTC"
    return _render(
        f"Your helpdesk access ends on {ends} for {project}",
        [
            "Hello,",
            f"Your access to the helpdesk of a project ends on {ends}. "
            "As they are written in the project console:",
        ],
        [_Fact("Project", project), _Fact("Your name", quoted(name))],
        [
            "After that you can no longer open or follow requests there. If you still need "
            "access, ask the project's manager to extend it.",
        ],
    )


def access_request_decision(
    name: str, project_name: str, approved: bool, reason: str, grant_expires_at: str | None
) -> Email:
    """The requester learns the decision on their request (`reason`: what they typed)."""
    project = quoted(project_name)
    facts = [
        _Fact("Project", project),
        _Fact("Your name", quoted(name)),
        _Fact("Your reason", quoted(reason, REASON_MAX_LENGTH)),
    ]
    if approved:
        after = ["Your helpdesk access is being set up; you get an email once it is ready."]
        if grant_expires_at:
            ends = grant_expires_at.replace("T", " ").removesuffix("Z")[:16] + " UTC"
            after.append(f"The access ends on {ends}.")
    else:
        after = ["If you still need access, talk to your company's project manager."]
    outcome = "approved" if approved else "denied"
    return _render(
        f"Your helpdesk access request was {outcome} for {project}",
        [
            "Hello,",
            f"A manager of your company {outcome} your request for helpdesk access. "
            "As they are written in the project console:",
        ],
        facts,
        after,
    )
