"""FAKE ``qai_hub.public_rest_api`` (qai-hub 0.56.0): only ``APIException``, the cause the client chains to the
InternalError it raises for an HTTP failure (tests/fakes/README.md)."""

from __future__ import annotations

# qai-hub 0.56.0 qai_hub/public_rest_api.py: the default texts APIException.__init__ gives a status without a message
_DEFAULT_MESSAGES = {
    401: "API authentication failure; please check your API token.",
    429: "Too Many Requests: please slow down and try again soon.",
}


class APIException(Exception):
    """qai-hub 0.56.0 qai_hub/public_rest_api.py APIException: message, status_code, url."""

    def __init__(self, message: str | None = None, status_code: int | None = None, url: str | None = None) -> None:
        if not message:
            message = _DEFAULT_MESSAGES.get(status_code or 0, f"API request returned status code {status_code}.")
        super().__init__(message)
        self.status_code = status_code
        self.url = url
