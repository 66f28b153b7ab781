"""AK/SK request signing (``SDK-HMAC-SHA256``), exactly as Huawei Cloud's official SDK signs.

This module owns the canonical request, the string to sign, the signature and the
``Authorization`` header format — for both sides: the client (:mod:`ges_bot.jobcenter.auth`)
signs with it and the emulator verifies with it. It is pure: no clock (the caller puts
``X-Sdk-Date`` in the headers), no I/O, no logging. It never sees a ``SecretStr``; callers unwrap
the SK right before the call and must not log what they pass.

The rules mirror ``huaweicloudsdkcore.signer.signer.Signer`` (checked by a property test against
it on generated requests):

- canonical URI: the decoded path split on ``/``, each segment percent-encoded (only ``~`` safe
  besides unreserved characters), a trailing ``/`` always added;
- canonical query: (key, value) pairs sorted *before* encoding, each side percent-encoded the
  same way (space → ``%20``), ``k=v`` joined by ``&``;
- canonical headers: ``name:value.strip()`` per signed header, lower-case names, each followed by
  a newline; signed headers are every header whose name has no ``_``, lower-cased and sorted;
- payload hash: hex SHA-256 of the body; an empty body hashes to :data:`EMPTY_BODY_SHA256`; when
  the body is non-empty and an ``X-Sdk-Content-Sha256`` header is present (the SDK sets
  ``UNSIGNED-PAYLOAD`` for non-JSON uploads), its value stands in for the hash;
- string to sign: ``SDK-HMAC-SHA256\\n{X-Sdk-Date}\\n{hex sha256(canonical request)}``;
- signature: hex HMAC-SHA256 of the string to sign keyed with the SK.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

__all__ = [
    "ALGORITHM",
    "EMPTY_BODY_SHA256",
    "SDK_DATE_FORMAT",
    "SignedParts",
    "authorization_header",
    "canonical_query",
    "canonical_uri",
    "compute_signature",
    "parse_authorization",
]

ALGORITHM = "SDK-HMAC-SHA256"
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_BODY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
_DATE_HEADER = "x-sdk-date"
_CONTENT_HASH_HEADER = "x-sdk-content-sha256"
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class SignedParts:
    """Everything computed while signing one request (useful to debug a signature mismatch)."""

    canonical_request: str
    string_to_sign: str
    #: Lower-case header names joined by ``;``, e.g. ``content-type;host;x-project-id;x-sdk-date``.
    signed_headers: str
    #: Lower-case hex HMAC-SHA256.
    signature: str


def _encode(text: str) -> str:
    return quote(text, safe="~")


def canonical_uri(path: str) -> str:
    """The canonical URI of a *decoded* URL path (``request.url.path`` in httpx/Starlette)."""
    uri = "/".join(_encode(segment) for segment in path.split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(query: Sequence[tuple[str, str]]) -> str:
    """The canonical query string: raw pairs sorted, then each side percent-encoded."""
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted((str(k), str(v)) for k, v in query))


def compute_signature(
    *,
    sk: str,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    signed_header_names: Sequence[str] | None = None,
) -> SignedParts:
    """Sign (or re-derive the signature of) one request.

    ``path`` is the decoded URL path; ``headers`` (keys case-insensitive) must already hold ``Host``
    and ``X-Sdk-Date``. With ``signed_header_names=None`` (client side) every header whose name has
    no ``_`` is signed; given (verifier side), exactly those names are, taken from the
    ``SignedHeaders`` of the request's ``Authorization`` header.

    Raises ``ValueError`` when ``X-Sdk-Date`` is missing or malformed, or a named signed header is
    absent — a verifier answers that with 401.
    """
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        lowered[name.lower()] = str(value).strip()
    if signed_header_names is None:
        names = sorted({name for name in lowered if "_" not in name})
    else:
        names = [name.lower() for name in signed_header_names]
        missing = [name for name in names if name not in lowered]
        if missing:
            raise ValueError(f"signed header(s) not in the request: {', '.join(missing)}")
    if signed_header_names is None and "host" not in lowered:
        raise ValueError("the request has no Host header")
    raw_date = lowered.get(_DATE_HEADER)
    if raw_date is None:
        raise ValueError("the request has no X-Sdk-Date header")
    try:
        sdk_date = datetime.strptime(raw_date, SDK_DATE_FORMAT).strftime(SDK_DATE_FORMAT)
    except ValueError:
        raise ValueError(f"X-Sdk-Date {raw_date!r} is not in the form yyyymmddTHHMMSSZ") from None

    if not body:
        payload_hash = EMPTY_BODY_SHA256
    else:
        payload_hash = lowered.get(_CONTENT_HASH_HEADER) or hashlib.sha256(body).hexdigest()

    signed_headers = ";".join(names)
    canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in names)
    canonical_request = "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            canonical_headers,
            signed_headers,
            payload_hash,
        )
    )
    string_to_sign = "\n".join((ALGORITHM, sdk_date, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()))
    signature = hmac.new(sk.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return SignedParts(
        canonical_request=canonical_request,
        string_to_sign=string_to_sign,
        signed_headers=signed_headers,
        signature=signature,
    )


def authorization_header(ak: str, parts: SignedParts) -> str:
    """``SDK-HMAC-SHA256 Access={ak}, SignedHeaders={names}, Signature={hex}``."""
    return f"{ALGORITHM} Access={ak}, SignedHeaders={parts.signed_headers}, Signature={parts.signature}"


def parse_authorization(value: str) -> tuple[str, list[str], str]:
    """Split an ``Authorization`` header into (AK, signed header names, signature).

    Raises ``ValueError`` naming what is wrong when the header is not an ``SDK-HMAC-SHA256``
    authorization (the message never repeats the signature).
    """
    scheme, _, rest = value.strip().partition(" ")
    if scheme != ALGORITHM:
        raise ValueError(f"Authorization scheme must be {ALGORITHM}")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            raise ValueError(f"Authorization field {key!r} has no '='")
        if key in fields:
            raise ValueError(f"Authorization field {key!r} appears twice")
        fields[key] = val.strip()
    missing = [k for k in ("Access", "SignedHeaders", "Signature") if not fields.get(k)]
    if missing:
        raise ValueError(f"Authorization lacks {', '.join(missing)}")
    names = fields["SignedHeaders"].split(";")
    if any(not n or n != n.strip() for n in names):
        raise ValueError("Authorization SignedHeaders has an empty or padded name")
    if not _HEX64.fullmatch(fields["Signature"]):
        raise ValueError("Authorization Signature is not 64 lower-case hex digits")
    return fields["Access"], names, fields["Signature"]
