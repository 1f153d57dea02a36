"""Emails sent through SES."""

from .sender import SesMailer

__all__ = ["SesMailer"]
