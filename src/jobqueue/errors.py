"""Errors that cross layers and map to HTTP answers."""

from __future__ import annotations


class NotConfigured(Exception):
    """A required variable is missing or invalid; the message names it and never its value."""


class ServiceUnavailable(Exception):
    """A dependency (the queue's store) cannot be reached; the request may be retried."""
