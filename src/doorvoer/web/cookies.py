"""Every cookie the portal sets, in one place (P22). The cookie notice is generated
from this list, and `set_cookie` refuses a cookie that is not on it."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import Response


@dataclass(frozen=True)
class Cookie:
    name: str
    purpose: str
    lifetime: str
    strictly_necessary: bool = True


SESSION = Cookie(
    name="doorvoer_session",
    purpose="Keeps you logged in: a random token that points at your session on our server.",
    lifetime="Until you log out or close the browser; the session itself ends after 30 "
             "minutes without activity and after 12 hours at most.",
)
COOKIES: tuple[Cookie, ...] = (SESSION,)


def set_cookie(response: Response, cookie: Cookie, value: str) -> None:
    assert cookie in COOKIES
    response.set_cookie(cookie.name, value, secure=True, httponly=True, samesite="lax",
                        path="/")


def clear_cookie(response: Response, cookie: Cookie) -> None:
    response.delete_cookie(cookie.name, secure=True, httponly=True, samesite="lax", path="/")
