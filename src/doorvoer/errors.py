"""The errors every area's own derive from: a UserError is something the user can fix,
and its message says what (exit code 1, SFTP failure status, HTTP 4xx). Each area keeps
its own exceptions in its `errors.py`; each door maps them in one place."""


class UserError(Exception):
    pass


class NotFound(UserError):
    pass


class ConfigError(Exception):
    """A setting is missing or wrong; the message says which."""
