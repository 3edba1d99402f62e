"""What an OpenAI-compatible endpoint's failures mean, said in one line without its API key: the words
status and bench share."""

from __future__ import annotations

import re
import ssl

import requests
import urllib3


def error_detail(response: requests.Response, api_key: str | None) -> str:
    """The server's own reason, short: vLLM answers errors as {"error": ...} or {"message": ...}."""
    if response.status_code == 401 and not api_key:
        return "unauthorized: no API key given (--api-key or VLLM_API_KEY)"
    if response.status_code == 401:
        return "unauthorized: the API key was refused"
    try:
        body = response.json()
    except ValueError:
        return response.reason or ""
    error = body.get("error", body) if isinstance(body, dict) else body
    message = (error.get("message") or error.get("detail")) if isinstance(error, dict) else error
    return str(message or response.reason)[:120]


#: What a failed TLS handshake or verification means for a stack that just got its domain.
CERTIFICATE_NOT_READY = (
    "certificate not ready: TLS handshake or verification failed ({reason}); a new managed certificate is "
    "issued once the domain's DNS record points at the load balancer (GCP: up to 60 min after that)"
)
NOT_RESOLVING = "{host} does not resolve (yet): create the record the dnsRecords output names"


def transport_failure(error: requests.RequestException) -> str:
    if isinstance(error, requests.exceptions.SSLError):  # before ConnectionError, its base class
        return CERTIFICATE_NOT_READY.format(reason=_ssl_reason(error))
    if isinstance(error, requests.Timeout):  # before ConnectionError: a connect timeout is both
        return "timed out"
    if isinstance(error, requests.ConnectionError):
        if _cause(error, urllib3.exceptions.NameResolutionError) is not None:
            host = urllib3.util.parse_url(error.request.url).host if error.request else "the host"
            return NOT_RESOLVING.format(host=host)
        return "connection failed"
    return type(error).__name__


def _cause(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first exception of ``kind`` among ``error``'s arguments and causes (requests wraps urllib3's
    errors in MaxRetryError.reason)."""
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return current
        nested = [*current.args, getattr(current, "reason", None), current.__cause__, current.__context__]
        pending += [item for item in nested if isinstance(item, BaseException)]
    return None


def _ssl_reason(error: requests.exceptions.SSLError) -> str:
    """OpenSSL's short reason (``CERTIFICATE_VERIFY_FAILED``, ``SSLV3_ALERT_HANDSHAKE_FAILURE``...)."""
    found = _cause(error, ssl.SSLError)
    reason = getattr(found, "reason", None) if found is not None else None
    if isinstance(found, ssl.SSLCertVerificationError) and found.verify_message:
        return f"{reason}: {found.verify_message}"
    return str(reason or "TLS error")


def redact(text: str, secret: str | None) -> str:
    """Last line of defence: the key never reaches the terminal, whatever a server echoes back. Only the
    key as a whole token is masked (never inside a longer word such as a host name's label), so no other
    text changes however short or common the key's text is."""
    if not secret:
        return text
    return re.sub(rf"(?<![\w-]){re.escape(secret)}(?![\w-])", "***", text)
