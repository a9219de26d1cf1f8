"""Pure HTTP helpers (User-Agent, Range, Basic/Digest) and the syslog parser."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.errors import CodecError
from labkit.inventory.load import load
from labkit.plan.build import build_plan
from labkit.protocols.http import (
    DigestAuth,
    RangeNotSatisfiable,
    check_basic,
    parse_range,
    parse_user_agent,
)
from labkit.protocols.syslog import parse_syslog
from labkit.services.supervisor import endpoints


def test_user_agent_of_an_mpp_phone() -> None:
    agent = parse_user_agent("Cisco-CP-7832-3PCC/11.0.1 (00562b043615)")
    assert agent is not None
    assert (agent.model, agent.version, agent.mac, agent.serial) == (
        "CP-7832-3PCC", "11.0.1", "00:56:2b:04:36:15", None)
    with_serial = parse_user_agent("Cisco-CP-8851-3PCC/12.0.1 (00562B043615)(FCH2203001)")
    assert with_serial is not None and with_serial.serial == "FCH2203001"
    assert with_serial.mac == "00:56:2b:04:36:15"
    for other in (None, "", "curl/8.0", "Cisco-CP-7832-3PCC/11.0.1", "Cisco-CP-7832-3PCC/1 (xyz)"):
        assert parse_user_agent(other) is None


@pytest.mark.parametrize(("header", "size", "expected"), [
    (None, 100, None),
    ("bytes=0-9", 100, (0, 9)),
    ("bytes=90-", 100, (90, 99)),
    ("bytes=-10", 100, (90, 99)),
    ("bytes=-1000", 100, (0, 99)),
    ("bytes=95-200", 100, (95, 99)),
    ("bytes=9-0", 100, None),  # invalid: whole body
    ("bytes=0-1,5-6", 100, None),  # several ranges: whole body
    ("items=0-1", 100, None),
    ("bytes=x-y", 100, None),
])
def test_parse_range(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


def test_range_past_the_end_is_not_satisfiable() -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=100-", 100)
    assert issubclass(RangeNotSatisfiable, CodecError)


@given(st.text(max_size=40), st.integers(min_value=0, max_value=10**9))
def test_parse_range_raises_only_not_satisfiable(header: str, size: int) -> None:
    try:
        span = parse_range(header, size)
    except RangeNotSatisfiable:
        return
    if span is not None:
        first, last = span
        assert 0 <= first <= last < size


def test_basic_auth() -> None:
    good = "Basic " + base64.b64encode(b"phone:pa:ss").decode()
    assert check_basic(good, "phone", "pa:ss")
    assert not check_basic(good, "phone", "other")
    assert not check_basic("Basic !!!", "phone", "pa:ss")
    assert not check_basic(None, "phone", "pa:ss")


def _digest_answer(challenge: str, method: str, uri: str, user: str, password: str, *,
                   nc: str = "00000001", cnonce: str = "abc") -> str:
    params = dict(p.strip().split("=", 1) for p in challenge[7:].split(", "))
    nonce, realm = params["nonce"].strip('"'), params["realm"].strip('"')

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"{method}:{uri}")
    response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", qop=auth, '
            f'nc={nc}, cnonce="{cnonce}", response="{response}"')


def test_digest_auth_round_trip_and_expiry() -> None:
    auth = DigestAuth("phone", "s3cret", "labkit", lifetime=300)
    challenge = auth.challenge(1000.0)
    answer = _digest_answer(challenge, "GET", "/x.cfg", "phone", "s3cret")
    assert auth.check(answer, "GET", 1010.0) == (True, False)
    assert auth.check(answer, "POST", 1010.0) == (False, False)  # method is in the hash
    assert auth.check(_digest_answer(challenge, "GET", "/x.cfg", "phone", "bad"), "GET", 1010.0) == (
        False, False)
    assert auth.check(answer, "GET", 2000.0) == (False, True)  # right answer, stale nonce
    forged = answer.replace(challenge.split('nonce="')[1].split(".")[0], "ffffffff", 1)
    assert auth.check(forged, "GET", 1010.0)[0] is False
    assert auth.check("Digest garbage", "GET", 1010.0) == (False, False)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(("given_user", "given_password", "user", "password"), [
    ("phöne", "s3cret", "phone", "s3cret"),  # non-ASCII user: TypeError in compare_digest before
    ("phone", "sécret", "phone", "s3cret"),
    ("phone", "パスワード", "phone", "s3cret"),
    ("phone", "s3cret", "phone", "sécret"),  # a non-ASCII password in the inventory
])
def test_basic_auth_with_non_ascii_credentials_is_refused_not_an_error(
        given_user: str, given_password: str, user: str, password: str) -> None:
    assert check_basic(_basic(given_user, given_password), user, password) is False


def test_basic_auth_accepts_a_matching_non_ascii_password() -> None:
    assert check_basic(_basic("phöne", "sécret"), "phöne", "sécret") is True
    # a header carrying undecodable bytes (aiohttp keeps them as surrogates) is refused too
    assert check_basic("Basic \udcff\udcfe", "phone", "s3cret") is False


def test_digest_auth_with_non_ascii_answers_is_refused_not_an_error() -> None:
    auth = DigestAuth("phone", "s3cret", "labkit", lifetime=300)
    challenge = auth.challenge(1000.0)
    nonce = challenge.split('nonce="')[1].split('"')[0]
    stamp = nonce.split(".")[0]
    for answer in (
        _digest_answer(challenge, "GET", "/x.cfg", "phone", "sécret"),
        _digest_answer(challenge, "GET", "/x.cfg", "phöne", "s3cret"),
        _digest_answer(challenge, "GET", "/ü.cfg", "phone", "s3cret").replace(
            'response="', 'response="é', 1),
        _digest_answer(challenge, "GET", "/x.cfg", "phone", "s3cret").replace(nonce, stamp + ".é"),
        _digest_answer(challenge, "GET", "/x.cfg", "phone", "s3cret").replace(
            "/x.cfg", "/\udcff.cfg"),
    ):
        assert auth.check(answer, "GET", 1010.0) == (False, False), answer


def test_digest_auth_accepts_a_matching_non_ascii_password() -> None:
    auth = DigestAuth("phöne", "sécret", "labkit", lifetime=300)
    challenge = auth.challenge(1000.0)
    answer = _digest_answer(challenge, "GET", "/ü.cfg", "phöne", "sécret")
    assert auth.check(answer, "GET", 1010.0) == (True, False)


@given(st.text(max_size=30), st.text(max_size=30))
def test_basic_auth_never_raises(user: str, password: str) -> None:
    assert check_basic(_basic(user, password), "phone", "s3cret") is (
        (user, password) == ("phone", "s3cret"))


@given(st.text(max_size=80))
def test_digest_check_never_raises(header: str) -> None:
    auth = DigestAuth("phone", "s3cret", "labkit", secret=b"k" * 16)
    assert auth.check("Digest " + header, "GET", 1010.0)[0] is False


@given(st.binary(max_size=600))
def test_syslog_parser_never_raises(data: bytes) -> None:
    message = parse_syslog(data)
    assert message.format in ("rfc5424", "rfc3164", "raw")


def test_syslog_formats() -> None:
    m = parse_syslog(b"<134>Nov 21 10:00:01 phone1 prov[12]: Requesting resync\n")
    assert (m.facility, m.severity, m.hostname, m.app, m.message, m.format) == (
        "local0", "info", "phone1", "prov", "Requesting resync", "rfc3164")
    m = parse_syslog(b"<14>1 2026-11-21T10:00:00Z host app - - [x@1 a=\"b\"] \xef\xbb\xbfhello")
    assert (m.format, m.hostname, m.app, m.message) == ("rfc5424", "host", "app", "hello")
    m = parse_syslog(b"CP-8851-3PCC 00:56:2b:00:00:01 -- Successful resync \xff")
    assert m.format == "raw" and m.facility is None and m.message.endswith("\ufffd")


def test_endpoints_standard_loopback_and_offset() -> None:
    plan = build_plan(load(None))
    standard = endpoints(plan)
    assert str(standard["dns"]) .split() == ["dns", "udp+tcp", "10.42.0.1:53"]
    loop = endpoints(plan, loopback=True)
    assert {k: (e.host, e.port) for k, e in loop.items()} == {
        "syslog": ("127.0.0.1", 10514), "dns": ("127.0.0.1", 10053), "tftp": ("127.0.0.1", 10069),
        "http": ("127.0.0.1", 10080), "https": ("127.0.0.1", 10443), "dhcp": ("127.0.0.1", 10067),
        "acs": ("127.0.0.1", 17547)}  # the default lab's ACS (option 43's port 7547) moves with the others
    assert endpoints(plan, port_offset=20000)["tftp"].port == 20069


@pytest.mark.parametrize("core", ["labkit.protocols.http", "labkit.protocols.http_faults"])
def test_http_core_imports_nothing_above_its_layer(core: str) -> None:
    """Importing the HTTP core in a fresh interpreter loads no inventory, plan, service or faults
    module, nor pydantic, yaml, jinja2 (issue 9's layering rule)."""
    forbidden = ("pydantic", "yaml", "jinja2", "aiohttp", "labkit.inventory", "labkit.plan",
                 "labkit.services", "labkit.faults")
    probe = (f"import sys, {core}\n"
             f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r} "
             f"or any(m == f or m.startswith(f + '.') for f in {forbidden!r}))\n"
             "print(','.join(bad))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                            check=True).stdout.strip()
    assert loaded == "", f"{core} loads {loaded}"


def test_plan_http_converts_the_inventory_into_frozen_plain_values(tmp_path: Path) -> None:
    import dataclasses

    from labkit.plan.http import HttpLimits, plan_http

    inventory = tmp_path / "lab.yaml"
    inventory.write_text(
        "lab: {domain: lab.example, address: 10.42.0.1/24}\n"
        "services:\n"
        "  http:\n"
        "    redirects: {/old.xml: {to: /new.xml, status: 301}}\n"
        "    limits: {header_timeout: 2.5, per_client: 3, connections: 40}\n"
        "  https:\n"
        "    auth: {user: phone, password: s3cret, scheme: digest}\n"
        "    encrypt: {ikm: secret-ikm, keyid: k1}\n")
    plan = build_plan(load(inventory))
    http, https = plan.http, plan.https
    assert http == plan_http(plan.inventory.services.http, "http")
    assert (http.scheme, http.auth, http.encrypt) == ("http", None, None)
    assert http.redirects["/old.xml"].to == "/new.xml" and http.redirects["/old.xml"].status == 301
    assert http.limits == HttpLimits(header_timeout=2.5, body_timeout=20.0, per_client=3, total=40)
    assert https.scheme == "https" and https.auth is not None
    assert (https.auth.scheme, https.auth.user, https.auth.password) == ("digest", "phone", "s3cret")
    assert https.encrypt is not None and (https.encrypt.ikm, https.encrypt.keyid) == (b"secret-ikm", b"k1")
    assert https.limits.per_client_on(loopback=True) == 256  # everyone is 127.0.0.1 there
    assert https.limits.per_client_on(loopback=False) == 16
    with pytest.raises(dataclasses.FrozenInstanceError):
        http.scheme = "https"  # type: ignore[misc]
    with pytest.raises(TypeError):
        http.redirects["/x"] = http.redirects["/old.xml"]  # type: ignore[index]
