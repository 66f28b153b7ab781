"""AK/SK signing: the published test vector, and agreement with the official SDK's Signer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

import pytest
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ges_bot.jobcenter.signing import (
    EMPTY_BODY_SHA256,
    SDK_DATE_FORMAT,
    authorization_header,
    compute_signature,
    parse_authorization,
)

AK = "AKEXAMPLE0123456789"
SK = "SKEXAMPLEsecretkey0123456789abcdefghijkl"
PROJECT = "0123456789abcdef0123456789abcdef"
HOST = "ges.cn-north-4.myhuaweicloud.com"
VECTOR_HEADERS = {
    "Content-Type": "application/json",
    "X-Project-Id": PROJECT,
    "X-Sdk-Date": "20240102T030405Z",
    "Host": HOST,
}
VECTOR_QUERY = [("offset", "0"), ("limit", "10"), ("status", "running"), ("graph_name", "my graph")]


def test_notes_test_vector() -> None:
    parts = compute_signature(
        sk=SK,
        method="GET",
        path=f"/v2/{PROJECT}/graphs/jobs",
        query=VECTOR_QUERY,
        headers=VECTOR_HEADERS,
        body=b"",
    )
    assert parts.signed_headers == "content-type;host;x-project-id;x-sdk-date"
    assert parts.string_to_sign == (
        "SDK-HMAC-SHA256\n20240102T030405Z\n0535ff4676fec0b6682e4db7e0e473bdcf6d79bbe51bef20b884af51d304eb58"
    )
    assert parts.signature == "37a2d94970df16a02922b25ce358f7880a0f10a1fc4e511afef0d9ecff6f6aa8"
    assert parts.canonical_request == (
        f"GET\n/v2/{PROJECT}/graphs/jobs/\n"
        "graph_name=my%20graph&limit=10&offset=0&status=running\n"
        f"content-type:application/json\nhost:{HOST}\nx-project-id:{PROJECT}\nx-sdk-date:20240102T030405Z\n\n"
        "content-type;host;x-project-id;x-sdk-date\n"
        f"{EMPTY_BODY_SHA256}"
    )
    assert authorization_header(AK, parts) == (
        "SDK-HMAC-SHA256 Access=AKEXAMPLE0123456789, SignedHeaders=content-type;host;x-project-id;x-sdk-date, "
        "Signature=37a2d94970df16a02922b25ce358f7880a0f10a1fc4e511afef0d9ecff6f6aa8"
    )


def test_header_names_are_case_insensitive_and_values_stripped() -> None:
    base = compute_signature(
        sk=SK, method="get", path=f"/v2/{PROJECT}/graphs/jobs", query=VECTOR_QUERY, headers=VECTOR_HEADERS, body=b""
    )
    shouty = {k.upper(): f"  {v}\t" for k, v in VECTOR_HEADERS.items()}
    again = compute_signature(
        sk=SK, method="GET", path=f"/v2/{PROJECT}/graphs/jobs", query=VECTOR_QUERY, headers=shouty, body=b""
    )
    assert again.signature == base.signature


def test_underscore_headers_are_not_signed_on_the_client_side() -> None:
    headers = {**VECTOR_HEADERS, "X_Custom": "v"}
    parts = compute_signature(sk=SK, method="GET", path="/v2/x", query=[], headers=headers, body=b"")
    assert "x_custom" not in parts.signed_headers.split(";")


def test_body_changes_the_signature() -> None:
    empty = compute_signature(sk=SK, method="POST", path="/v2/x", query=[], headers=VECTOR_HEADERS, body=b"")
    full = compute_signature(sk=SK, method="POST", path="/v2/x", query=[], headers=VECTOR_HEADERS, body=b"{}")
    assert full.canonical_request.endswith(hashlib.sha256(b"{}").hexdigest())
    assert full.signature != empty.signature


def test_verifier_side_uses_exactly_the_named_headers() -> None:
    signed = compute_signature(
        sk=SK, method="GET", path=f"/v2/{PROJECT}/graphs/jobs", query=VECTOR_QUERY, headers=VECTOR_HEADERS, body=b""
    )
    ak, names, sig = parse_authorization(authorization_header(AK, signed))
    # The server sees extra headers the client did not sign (proxies add them); they must not matter.
    received = {**VECTOR_HEADERS, "User-Agent": "curl/8", "Accept-Encoding": "gzip", "Authorization": "x"}
    verified = compute_signature(
        sk=SK,
        method="GET",
        path=f"/v2/{PROJECT}/graphs/jobs",
        query=list(reversed(VECTOR_QUERY)),
        headers=received,
        body=b"",
        signed_header_names=names,
    )
    assert (ak, verified.signature) == (AK, sig)
    tampered = compute_signature(
        sk=SK,
        method="GET",
        path=f"/v2/{PROJECT}/graphs/jobs",
        query=[*VECTOR_QUERY[:-1], ("graph_name", "other")],
        headers=received,
        body=b"",
        signed_header_names=names,
    )
    assert tampered.signature != sig


def test_verifier_rejects_missing_signed_header_and_bad_date() -> None:
    headers = {k: v for k, v in VECTOR_HEADERS.items() if k != "X-Project-Id"}
    with pytest.raises(ValueError, match="x-project-id"):
        compute_signature(
            sk=SK,
            method="GET",
            path="/v2/x",
            query=[],
            headers=headers,
            body=b"",
            signed_header_names=["content-type", "host", "x-project-id", "x-sdk-date"],
        )
    with pytest.raises(ValueError, match="X-Sdk-Date"):
        compute_signature(
            sk=SK, method="GET", path="/v2/x", query=[], headers={**headers, "X-Sdk-Date": "2024-01-02"}, body=b""
        )
    with pytest.raises(ValueError, match="X-Sdk-Date"):
        compute_signature(sk=SK, method="GET", path="/v2/x", query=[], headers={"Host": HOST}, body=b"")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("Bearer abc", "scheme"),
        ("SDK-HMAC-SHA256 Access=AK, SignedHeaders=host", "Signature"),
        ("SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature=xyz", "hex"),
        ("SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;;x, Signature=" + "a" * 64, "empty"),
        ("SDK-HMAC-SHA256 Access=AK SignedHeaders=host, Signature=" + "a" * 64, "SignedHeaders"),
        ("SDK-HMAC-SHA256 Access=, SignedHeaders=host, Signature=" + "a" * 64, "Access"),
        ("SDK-HMAC-SHA256 Access=A, Access=B, SignedHeaders=host, Signature=" + "a" * 64, "twice"),
        ("SDK-HMAC-SHA256 garbage", "no '='"),
    ],
)
def test_parse_authorization_rejects_malformed(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_authorization(value)


# --- agreement with the official SDK --------------------------------------------------------


@dataclass
class _Credentials:
    ak: str
    sk: str


_segment = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="/"), min_size=1, max_size=12)
_query_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)
_reserved = st.sampled_from([" ", "+", "&", "=", "%", "?", "#", "~", "*", "'", "/", ":", "é", "图", "%20"])
_query_value = st.one_of(_query_text, st.lists(_reserved, max_size=4).map("".join))
_header_name = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,15}", fullmatch=True)
_header_value = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from([" ", "\t", "é"]), max_size=20
)


@st.composite
def _requests(draw: st.DrawFn) -> tuple[str, str, list[tuple[str, str]], dict[str, str], bytes]:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "get"]))
    path = "/" + "/".join(draw(st.lists(_segment, min_size=1, max_size=5)))
    if draw(st.booleans()):
        path += "/"
    query = draw(st.lists(st.tuples(st.one_of(_query_text, _reserved), _query_value), max_size=6))
    headers: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in draw(st.lists(st.tuples(_header_name, _header_value), max_size=6)):
        if name.lower() in seen or name.lower() in ("host", "x-sdk-date", "x-sdk-content-sha256", "authorization"):
            continue
        seen.add(name.lower())
        headers[name] = value
    headers[draw(st.sampled_from(["Host", "host", "HOST"]))] = draw(
        st.sampled_from([HOST, "127.0.0.1:8081", " localhost "])
    )
    when = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.none()))
    headers[draw(st.sampled_from(["X-Sdk-Date", "x-sdk-date"]))] = when.strftime(SDK_DATE_FORMAT)
    if draw(st.booleans()):
        headers["Content-Type"] = draw(st.sampled_from(["application/json", "application/json;charset=UTF-8"]))
    body = draw(st.one_of(st.just(b""), st.binary(max_size=64)))
    return method, path, query, headers, body


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requests())
def test_agrees_with_the_official_sdk_signer(
    req: tuple[str, str, list[tuple[str, str]], dict[str, str], bytes],
) -> None:
    method, path, query, headers, body = req
    sdk_request = SdkRequest(
        method=method,
        schema="https",
        host=HOST,
        # The SDK unquotes resource_path before encoding it; hand it the path as it goes on the wire.
        resource_path=quote(path, safe="/"),
        query_params=list(query),
        header_params=dict(headers),
        body=body,
    )
    Signer(_Credentials(AK, SK)).sign(sdk_request)
    expected = sdk_request.header_params["Authorization"]

    ours = compute_signature(sk=SK, method=method, path=path, query=query, headers=headers, body=body)
    assert authorization_header(AK, ours) == expected

    # The verifier side, given the names the SDK signed, derives the same signature.
    ak, names, sig = parse_authorization(expected)
    verified = compute_signature(
        sk=SK, method=method, path=path, query=query, headers=headers, body=body, signed_header_names=names
    )
    assert (ak, verified.signature) == (AK, sig)
