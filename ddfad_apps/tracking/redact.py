"""Passwords out of URLs before they are written anywhere (reports, job files, MLflow params, logs).

Storage and tracking URLs such as ``postgresql://user:secret@host/db`` carry credentials; the processes that
connect need the real URL, but nothing that is kept or shown may contain the secret.  Redaction errs on the side
of hiding too much: the password runs from the first ``:`` after the user name to the LAST ``@`` of the URL (as
Python's own ``urllib`` reads it), so an un-escaped ``@``, ``/`` or ``?`` inside a password is hidden too.
A ``password=`` query parameter (libpq, SQLAlchemy) is hidden as well.  The user name, host, port, database and
the other parameters stay readable, and a URL without credentials (``journal:PATH``, ``sqlite:///x.db``) is
returned unchanged.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<rest>.*)$", re.DOTALL)
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&;](?:password|passwd|pwd)=)(?P<value>[^&;#]*)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (userinfo and ``password=`` query parameters)."""
    parts = _split(url)
    if parts is None:
        return url  # a path or journal:PATH: nothing to hide
    scheme, user, password, rest = parts
    if password:
        rest = f"{user}:{MASK}@{rest}"
    return scheme + _QUERY_PASSWORD.sub(lambda m: m["key"] + (MASK if m["value"] else ""), rest)


def redact_text(text: str, *urls: str) -> str:
    """``text`` (an error message, a log line) with each of ``urls`` redacted, and their bare passwords too.

    Drivers sometimes quote a URL, or just its (decoded) password, in their errors; hide both before showing them.
    """
    for url in urls:
        text = text.replace(url, redact_url(url))
        for secret in _secrets(url):
            text = text.replace(secret, MASK)
    return text


def _split(url: str) -> tuple[str, str, str, str] | None:
    """(``scheme://``, user, password, the rest after ``@`` or all of it), or None for a URL without a scheme."""
    match = _SCHEME.match(url)
    if match is None:
        return None
    scheme, rest = match["scheme"], match["rest"]
    at = rest.rfind("@")
    if at >= 0:
        user, colon, password = rest[:at].partition(":")
        if "/" not in user and colon and password:
            return scheme, user, password, rest[at + 1:]
    return scheme, "", "", rest


def _secrets(url: str) -> list[str]:
    """The passwords in ``url`` (userinfo and query, as written and percent-decoded), longest first."""
    parts = _split(url)
    if parts is None:
        return []
    found = [parts[2]] if parts[2] else []
    found += [m["value"] for m in _QUERY_PASSWORD.finditer(parts[3]) if m["value"]]
    found += [unquote(s) for s in found]
    return sorted({s for s in found if s}, key=len, reverse=True)
