"""The API key rule of every route: ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Header, HTTPException


def key_checker(api_key: str | None) -> Callable[..., None]:
    """A FastAPI dependency that lets everyone in without a key, else only its holders."""

    def check_key(
        x_api_key: Annotated[str | None, Header()] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> None:
        if not api_key:
            return
        bearer = authorization.removeprefix("Bearer ").strip() if authorization else None
        given = x_api_key or bearer or ""
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(
                401, "missing or wrong API key (X-API-Key or Authorization: Bearer)"
            )

    return check_key
