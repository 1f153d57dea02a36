"""The email texts: plain text and HTML of each message, every interpolated value escaped."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str


def _html(title: str, paragraphs: list[str], link: tuple[str, str] | None = None) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    if link:
        body += f'<p><a href="{escape(link[1], quote=True)}">{escape(link[0])}</a></p>'
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"</head><body>{body}</body></html>"
    )


def activation(name: str, project_name: str, portal_url: str) -> Email:
    subject = f"Your helpdesk access for {project_name}"
    steps = [
        f"Hello {name},",
        f"You can now open requests on the helpdesk of the project {project_name}.",
        "Your helpdesk account is separate from the portal: the first time you sign in, "
        'choose "Forgot your password?" to set your helpdesk password.',
    ]
    text = "\n\n".join([*steps, f"Helpdesk: {portal_url}"]) + "\n"
    html = _html(subject, [escape(s) for s in steps], ("Open the helpdesk", portal_url))
    return Email(subject, text, html)


def password_reset(name: str, project_name: str, reset_url: str) -> Email:
    subject = f"Reset your helpdesk password ({project_name})"
    lines = [
        f"Hello {name},",
        f"A project manager asked us to help you reset your helpdesk password for {project_name}.",
        "Follow the link, enter your email address and the helpdesk sends you a reset link.",
    ]
    text = "\n\n".join([*lines, f"Reset your password: {reset_url}"]) + "\n"
    html = _html(subject, [escape(s) for s in lines], ("Reset your password", reset_url))
    return Email(subject, text, html)


def support_access_changed(
    project_name: str, project_id: str, enabled: bool, reason: str | None, actor_email: str
) -> Email:
    state = "enabled" if enabled else "disabled"
    subject = f"Support access {state} on {project_name}"
    lines = [
        f"Support access was {state} on the project {project_name} ({project_id}) "
        f"by {actor_email}.",
    ]
    if enabled:
        lines.append(f"Reason: {reason or '-'}")
    text = "\n\n".join(lines) + "\n"
    html = _html(subject, [escape(line) for line in lines])
    return Email(subject, text, html)
