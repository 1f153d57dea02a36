"""The HR queue adapter (SPEC §4)."""

from .queue import SqsHrQueue

__all__ = ["SqsHrQueue"]
