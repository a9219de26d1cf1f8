"""The main process trusts a worker's forwarded client address only with the lab's token, and the
workers share one Digest secret with it (labkit.services.http_forward)."""

from __future__ import annotations

import pickle

from aiohttp.test_utils import make_mocked_request

from labkit.plan.http import HttpAuthPlan, HttpPlan
from labkit.services.http import _digest
from labkit.services.http_forward import FORWARD_HEADER, HttpLink, as_forwarded, forwarded_peer


def test_forwarded_peer_needs_the_token() -> None:
    link = HttpLink(port=8080)
    good = make_mocked_request("GET", "/x", headers={FORWARD_HEADER: f"{link.token} 10.0.0.7 40123"})
    assert forwarded_peer(good, link) == ("10.0.0.7", 40123)
    for value in (f"{HttpLink().token} 10.0.0.7 40123", f"{link.token} 10.0.0.7", f"{link.token} 10.0.0.7 x",
                  "", f"{link.token}  10.0.0.7 40123"):
        assert forwarded_peer(make_mocked_request("GET", "/x", headers={FORWARD_HEADER: value}), link) is None
    assert forwarded_peer(make_mocked_request("GET", "/x"), link) is None


def test_as_forwarded_is_the_clients_request() -> None:
    link = HttpLink(port=8080)
    request = make_mocked_request("POST", "/report/a.xml?x=1", headers={
        FORWARD_HEADER: f"{link.token} 10.0.0.7 40123", "User-Agent": "phone"})
    again = as_forwarded(request, "10.0.0.7")
    assert again.remote == "10.0.0.7" and FORWARD_HEADER not in again.headers
    assert again.headers["User-Agent"] == "phone" and again.path_qs == "/report/a.xml?x=1"


def test_workers_and_main_share_the_digest_secret() -> None:
    link = pickle.loads(pickle.dumps(HttpLink(port=1)))  # as it travels to a worker
    plan = HttpPlan("http", auth=HttpAuthPlan("digest", "u", "p", "lab"))
    here, there = _digest(plan, HttpLink().digest_secret), _digest(plan, link.digest_secret)
    main = _digest(plan, link.digest_secret)
    assert here is not None and there is not None and main is not None
    assert there.make_nonce(1000.0) == main.make_nonce(1000.0) != here.make_nonce(1000.0)
