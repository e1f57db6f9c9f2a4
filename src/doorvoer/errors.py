"""Errors shared by every door: a UserError is something the user can fix, and its
message says what (exit code 1, SFTP failure status, HTTP 4xx)."""


class UserError(Exception):
    pass


class NotFound(UserError):
    pass


class Denied(Exception):
    """The access policy refused. Doors turn it into their own 'permission denied'."""
