"""The entry points' small parts: the form reader, the failure limiter, the CSRF guard."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledgerd.identity.entrypoints.csrf import CsrfGuard
from ledgerd.identity.entrypoints.failure_limits import FailureLimit, FailureLimiter
from ledgerd.identity.entrypoints.forms import FormError, parse_form


def test_a_form_keeps_one_value_per_name_and_drops_blank_ones() -> None:
    assert parse_form(b"a=1&b=&c=x+y%21") == {"a": "1", "c": "x y!"}
    assert parse_form(b"") == {}


def test_a_login_form_may_carry_utf8_text_but_no_control_characters() -> None:
    assert parse_form(b"password=p%C3%A4ss", text=True) == {"password": "päss"}
    with pytest.raises(FormError):
        parse_form(b"password=p%C3%A4ss")
    with pytest.raises(FormError):
        parse_form(b"password=a%0Ab", text=True)


def test_an_error_never_echoes_an_unprintable_name() -> None:
    with pytest.raises(FormError, match=r"\(unprintable\)"):
        parse_form(b"%01=1&%01=2")


class Monotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_refuses_at_the_limit_until_the_oldest_failure_leaves() -> None:
    clock = Monotonic()
    limiter = FailureLimiter(FailureLimit(3, timedelta(seconds=60)), monotonic=clock)
    for second in (0, 10, 20):
        clock.now = second
        assert limiter.retry_after(["k"]) is None
        limiter.record_failure(["k"])
    assert limiter.retry_after(["k"]) == 40
    assert limiter.retry_after(["other"]) is None
    clock.now = 60
    assert limiter.retry_after(["k"]) is None


def test_the_limiter_forgets_the_least_recent_key_past_its_bound() -> None:
    limiter = FailureLimiter(
        FailureLimit(1, timedelta(seconds=60)), max_keys=2, monotonic=Monotonic()
    )
    limiter.record_failure(["a"])
    limiter.record_failure(["b"])
    limiter.record_failure(["c"])
    assert limiter.retry_after(["a"]) is None
    assert limiter.retry_after(["b"]) == 60
    assert limiter.retry_after(["c"]) == 60


def test_the_csrf_token_is_bound_to_the_cookie_key_and_time() -> None:
    now = [1000.0]
    guard = CsrfGuard(b"k" * 32, lambda: now[0])
    cookie = guard.cookie_value(None)
    token = guard.form_token(cookie)
    assert guard.accepts(cookie, token)
    assert not guard.accepts(guard.cookie_value(None), token)
    assert not CsrfGuard(b"j" * 32, lambda: now[0]).accepts(cookie, token)
    assert not guard.accepts(cookie, None)
    now[0] += 601
    assert not guard.accepts(cookie, token)


def test_a_short_csrf_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        CsrfGuard(b"short", lambda: 0.0)
