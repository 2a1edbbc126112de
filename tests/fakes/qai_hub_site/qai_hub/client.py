"""FAKE ``qai_hub.client`` (qai-hub 0.56.0): the error classes, how the client turns an HTTP failure into one of
them, and its own retry of rate-limited job creation (tests/fakes/README.md).

``RateLimitedError`` lives here only: qai-hub 0.56.0 leaves it out of ``qai_hub.client.__all__``, so
``qai_hub.RateLimitedError`` does not exist. Tests make the client's retry fast by replacing ``_sleep``.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from typing import Any, NoReturn
from urllib.parse import urlparse

import requests

from .public_rest_api import APIException

__all__ = ["Error", "InternalError", "UserError"]

# qai-hub 0.56.0 qai_hub/client.py RATE_LIMIT_RETRY_TIMEOUT: minutes of retrying a rate-limited job creation
RATE_LIMIT_RETRY_TIMEOUT = 10
API_URL = "https://workbench.aihub.qualcomm.com"
SUPPORT_EMAIL = "ai-hub-support@qti.qualcomm.com"


class Error(Exception):
    """qai-hub 0.56.0 qai_hub/client.py Error: the base of every error the client raises itself."""


class InternalError(Error):
    """qai-hub 0.56.0 qai_hub/client.py InternalError: hub 5xx, lost connections, and 4xx from other services."""


class UserError(Error):
    """qai-hub 0.56.0 qai_hub/client.py UserError: configuration, authentication, and hub 4xx other than 429."""


class RateLimitedError(Error):
    """qai-hub 0.56.0 qai_hub/client.py RateLimitedError: HTTP 429 from the hub."""


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _visible_textbox(text: str) -> str:
    # qai-hub 0.56.0 qai_hub/client.py _visible_textbox: a 70-wide box, text wrapped at 66
    width = 70
    lines = ["| " + line.ljust(width - 4) + " |" for line in textwrap.TextWrapper(width=width - 4).wrap(text)]
    return "\n┌" + "─" * (width - 2) + "┐\n" + "\n".join(lines) + "\n└" + "─" * (width - 2) + "┘"


def _raise_internal_error(message: str, cause: Exception, url: str | None, contact_support: bool = False) -> NoReturn:
    # qai-hub 0.56.0 qai_hub/client.py _raise_internal_error: "{service}" is the hub or the other service's host
    is_hub = url is None or url.startswith(API_URL)
    text = message.format(service="Qualcomm AI Hub" if is_hub else urlparse(url).netloc)
    if is_hub:
        text += f" Please visit {API_URL} to check the service's status."
    if contact_support:
        text += f" Please contact support at {SUPPORT_EMAIL}."
    raise InternalError(f"Internal API failure.\n{_visible_textbox(text)}") from cause


def _handle_api_exception(error: Exception) -> NoReturn:
    """qai-hub 0.56.0 qai_hub/client.py Client._handle_api_exception and _raise_if_hub_user_error, for the
    failures this fake injects: a lost connection, and an APIException from the hub or from another service."""
    if isinstance(error, requests.exceptions.ConnectionError):
        _raise_internal_error("Could not connect to {service}.", error, None)
    if not isinstance(error, APIException):
        raise error
    is_hub = error.url is None or error.url.startswith(API_URL)
    status = error.status_code or 0
    if is_hub and status == 429:
        raise RateLimitedError(str(error)) from None
    if is_hub and 400 <= status < 500:
        raise UserError(str(error)) from None
    if status in (502, 503):
        _raise_internal_error("{service} is unavailable right now.", error, error.url)
    if status >= 500:
        _raise_internal_error("{service} reported errors.", error, error.url, contact_support=is_hub)
    if not is_hub:  # the client's comment: a 4xx from another service (storage) means a bug in AI Hub code
        _raise_internal_error(str(error), error, error.url, contact_support=True)
    raise error


def api_call(request: Callable[[], Any]) -> Any:
    """qai-hub 0.56.0 qai_hub/client.py Client._api_call: one request, its failure mapped to the client's errors."""
    try:
        return request()
    except Exception as error:
        _handle_api_exception(error)


def api_call_with_retry(request: Callable[[], Any]) -> Any:
    """qai-hub 0.56.0 qai_hub/client.py Client._api_call_with_retry: a RateLimitedError is retried after 20 s, then
    doubling waits capped at 60 s, until more than RATE_LIMIT_RETRY_TIMEOUT minutes were spent waiting."""
    wait, waited = 20, 0
    try:
        return api_call(request)
    except RateLimitedError as error:
        print(_visible_textbox(f"{error} Retrying periodically until your request succeeds. Interrupt this and pass "
                               f"retry=False if you don't want this automatic retry."))
    while True:
        print(f"Retrying after {wait} seconds.")
        _sleep(wait)
        waited += wait
        try:
            return api_call(request)
        except RateLimitedError:
            if waited > RATE_LIMIT_RETRY_TIMEOUT * 60:
                raise RateLimitedError(f"Could not create a job after retrying for {RATE_LIMIT_RETRY_TIMEOUT} minutes."
                                       " Please try again later.") from None
            wait = min(wait * 2, 60)
