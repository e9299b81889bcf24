"""The three kinds of event a Lambda function behind HTTP receives, as AWS documents them.

API Gateway HTTP API (payload format 2.0), API Gateway REST API (payload format 1.0) and an
Application Load Balancer target group (multi-value headers off). Built here, field by field,
so the tests send what Lambda would, not what the adapter under test happens to accept.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote

Event = dict[str, Any]
EventBuilder = Callable[..., Event]
_HOST = "ledger.example.com"


def _body(body: bytes | None, *, binary: bool) -> tuple[str | None, bool]:
    """The event's body field and isBase64Encoded: text as it is, bytes base64-encoded."""
    if body is None:
        return None, False
    if binary:
        return base64.b64encode(body).decode(), True
    return body.decode(), False


def http_api_v2(  # noqa: PLR0913 - one parameter per part of a request
    method: str,
    path: str,
    *,
    query: str = "",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    binary: bool = False,
) -> Event:
    """An API Gateway HTTP API event, payload format 2.0 (headers lower-cased, cookies apart)."""
    text, encoded = _body(body, binary=binary)
    all_headers = {"host": _HOST, **{k.lower(): v for k, v in (headers or {}).items()}}
    cookies = all_headers.pop("cookie", None)
    event: Event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": _HOST,
            "domainPrefix": "ledger",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": "tests",
            },
            "requestId": "request-v2",
            "routeKey": "$default",
            "stage": "$default",
            "time": "07/Dec/2026:14:00:00 +0000",
            "timeEpoch": 1796652000000,
        },
        "isBase64Encoded": encoded,
    }
    if cookies is not None:
        event["cookies"] = cookies.split("; ")
    if query:
        event["queryStringParameters"] = dict(parse_qsl(query))
    if text is not None:
        event["body"] = text
    return event


def rest_api_v1(  # noqa: PLR0913 - one parameter per part of a request
    method: str,
    path: str,
    *,
    query: str = "",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    binary: bool = False,
) -> Event:
    """An API Gateway REST API proxy event, payload format 1.0 (decoded query, any case)."""
    text, encoded = _body(body, binary=binary)
    all_headers = {"Host": _HOST, **(headers or {})}
    pairs = parse_qsl(query)
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {key: [value] for key, value in all_headers.items()},
        "queryStringParameters": dict(pairs) or None,
        "multiValueQueryStringParameters": {k: [v for n, v in pairs if n == k] for k, _ in pairs}
        or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "httpMethod": method,
            "identity": {"sourceIp": "192.0.2.11", "userAgent": "tests"},
            "path": f"/prod{path}",
            "protocol": "HTTP/1.1",
            "requestId": "request-v1",
            "resourcePath": "/{proxy+}",
            "stage": "prod",
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


def alb(  # noqa: PLR0913 - one parameter per part of a request
    method: str,
    path: str,
    *,
    query: str = "",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    binary: bool = False,
) -> Event:
    """An ALB target group event (multi-value headers off): the query stays percent-encoded."""
    text, encoded = _body(body, binary=binary)
    return {
        "requestContext": {
            "elb": {
                "targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:"
                "targetgroup/ledgerd/0123456789abcdef"
            }
        },
        "httpMethod": method,
        "path": path,
        "queryStringParameters": {
            quote(name, safe=""): quote(value, safe="") for name, value in parse_qsl(query)
        },
        "headers": {
            "host": _HOST,
            "x-forwarded-for": "192.0.2.12",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
            **{k.lower(): v for k, v in (headers or {}).items()},
        },
        "body": text or "",
        "isBase64Encoded": encoded,
    }


BUILDERS: dict[str, EventBuilder] = {
    "http-api-v2": http_api_v2,
    "rest-api-v1": rest_api_v1,
    "alb": alb,
}


def response_body(response: Mapping[str, Any]) -> bytes:
    """The body a Lambda answer carries, base64-decoded when it says so."""
    body: str = response.get("body") or ""
    if response.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode()


def response_headers(response: Mapping[str, Any]) -> dict[str, str]:
    """Its headers, lower-cased, single- and multi-value forms merged."""
    merged = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for key, values in (response.get("multiValueHeaders") or {}).items():
        merged[key.lower()] = ", ".join(values)
    return merged
