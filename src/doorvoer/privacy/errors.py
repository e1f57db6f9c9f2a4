"""What the privacy area refuses."""

from __future__ import annotations

from doorvoer.errors import NotFound, UserError


class ErasureRefused(UserError):
    """An erasure that cannot be requested, cancelled or run as asked; the message says
    why."""


class BadCertificate(UserError):
    """An erasure certificate that does not verify; the message says why."""


class IncidentRefused(UserError):
    """An incident or update that cannot be recorded as given; the message names the
    field (and the line of its file)."""


class SubprocessorRefused(UserError):
    """A sub-processor entry, objection or consent that cannot be recorded as given."""


class NoSuchSubprocessor(NotFound):
    """No sub-processor of that key."""


class NoSuchIncident(NotFound):
    """No such incident (or none of it for this tenant)."""
