"""What the HTTP(S) service answers besides files: the emulated cloud's activation requests,
Report_Rule uploads and dynamic routes. Each answer is one event (labkit.services.http_send)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp import web

from labkit.plan.cloud import ACTIVATION_PATH, activation
from labkit.plan.http import HttpPlan, RoutePlan, glob_regex
from labkit.protocols.http import parse_user_agent
from labkit.services.cloud import CloudTls, asking_mac
from labkit.services.context import StartContext
from labkit.services.http_dynamic import DynamicRoutes, RequestFacts, form_fields, parse_fields
from labkit.services.http_send import SERVER_HEADER, Exchange
from labkit.services.reports import ReportStore, Upload, UploadRefused

RENDER_TIMEOUT = 10.0  # s a dynamic route may take (its lookup included) before it is a 500

Emit = Callable[[Exchange, str, str], None]


class Extras:
    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.cloud_tls = CloudTls()
        self.store: ReportStore | None = None
        self.routes = DynamicRoutes((), {})

    def take(self, config: HttpPlan, ctx: StartContext) -> None:
        self.config = config
        if config.scheme == "https":
            self.cloud_tls.take(config.cloud, ctx.state_dir, ctx.tls_keylog)
        if self.store is None or self.store.root != ctx.state_dir / "reports":
            self.store = ReportStore(ctx.state_dir)
        self.routes = DynamicRoutes(config.routes, config.phones)
        self.report_paths = [glob_regex(p) for p in config.reports.paths]

    # -- the emulated cloud ------------------------------------------------------------------
    def is_activation(self, exchange: Exchange) -> bool:
        """A request for the emulated cloud; its phone is then the MAC it names (fault rules
        match it by `mac`, `model` and `group`, the path `/lab/v1/activation`)."""
        if self.config.cloud is None or exchange.path != ACTIVATION_PATH:
            return False
        exchange.phone = exchange.phone or asking_mac(parse_fields(exchange.request.query_string))
        return True

    def activation(self, exchange: Exchange) -> web.Response:
        """The lab activation service's answer [I]: 200 and the URL, or 404 `no service provider`."""
        assert self.config.cloud is not None
        query = parse_fields(exchange.request.query_string)
        answer = activation(self.config.cloud, query)
        exchange.action = "activation"
        exchange.path = exchange.request.path_qs
        exchange.detail.update({"host": exchange.request.host, "decided_by": answer.why})
        result = {200: "ok", 404: "no-service-provider"}.get(answer.status, "bad-request")
        self.emit(exchange, f"{answer.status} {answer.body}", result)
        return web.Response(status=answer.status, text=answer.body + "\n", content_type="text/plain",
                            headers={"Server": SERVER_HEADER})

    # -- reports -----------------------------------------------------------------------------
    def is_report(self, exchange: Exchange, serves: Callable[[str], bool]) -> bool:
        """An upload: a POST or PUT to a report path; a PUT to any path this service does not
        serve (a file or a route is never overwritten: 405); a POST there whose body is a report
        (`HTTP_Report_Method` defaults to POST and the Report_Rule's URL is the admin's choice),
        not the `--post` body of a resync."""
        reports = self.config.reports
        if not reports.enabled or exchange.method not in ("PUT", "POST"):
            return False
        if any(r.match(exchange.path) for r in self.report_paths):
            return True
        if serves(exchange.path):
            return False
        return exchange.method == "PUT" or _report_body(exchange)

    async def report(self, exchange: Exchange) -> web.Response:
        """Keep one upload under `<state>/reports/<MA>/`; 413/507 when a bound says no."""
        assert self.store is not None
        request = exchange.request
        upload = Upload(exchange.phone or exchange.detail.get("ua_mac"), exchange.method, exchange.path,
                        request.headers.get("Content-Type", ""), request.headers.get("Content-Encoding", ""),
                        exchange.body, exchange.client, time.time())
        exchange.action = "report"
        try:
            meta = await asyncio.to_thread(self.store.store, self.config.reports, upload)
        except UploadRefused as exc:
            self.emit(exchange, f"{exc.status} {exc.why}", "refused")
            return _plain(exc.status, exc.why)
        except OSError as exc:
            self.emit(exchange, f"500 cannot store: {exc.strerror or exc}", "error")
            return _plain(500, "cannot store the upload")
        exchange.detail.update({"stored": meta["name"], "decoded": str(meta["decoded"]).lower()})
        if meta["note"]:
            exchange.detail["note"] = meta["note"]
        self.emit(exchange, f"200 stored {meta['size']} bytes", "ok")
        return _plain(200, "stored")

    # -- dynamic routes ----------------------------------------------------------------------
    def route_for(self, exchange: Exchange) -> RoutePlan | None:
        return self.routes.match(exchange.path, exchange.method)

    async def render(self, exchange: Exchange, route: RoutePlan) -> web.Response:
        facts = request_facts(exchange)
        exchange.detail["route"] = route.pattern
        try:
            rendering = asyncio.to_thread(self.routes.render, route, facts)
            rendered = await asyncio.wait_for(rendering, RENDER_TIMEOUT)
        except TimeoutError:
            self.emit(exchange, f"500 the route took over {RENDER_TIMEOUT:g} s", "error")
            return _plain(500, "the dynamic route timed out")
        self.emit(exchange, rendered.answer, rendered.result)
        # aiohttp sends no body to HEAD, with the Content-Length of the GET's
        return web.Response(status=rendered.status, body=rendered.body,
                            headers={"Server": SERVER_HEADER, "Content-Type": rendered.content_type})


def _report_body(exchange: Exchange) -> bool:
    """A report's body: RFC 8188 (Content-Encoding aes128gcm), `openssl enc` (`Salted__`) or XML
    (the flat profile the phone reports); a resync's `--post` body is a GPP value, `a=b&...`."""
    encoding = exchange.request.headers.get("Content-Encoding", "").strip().lower()
    body = exchange.body.lstrip()
    return encoding == "aes128gcm" or body.startswith((b"<", b"Salted__"))


def request_facts(exchange: Exchange) -> RequestFacts:
    """What the request tells a route's template."""
    request = exchange.request
    agent = parse_user_agent(request.headers.get("User-Agent"))
    body = exchange.body
    return RequestFacts(
        method=request.method, path=exchange.path, query=parse_fields(request.query_string),
        form=form_fields(body, request.headers.get("Content-Type", "")) if body else {},
        body=body.decode("utf-8", errors="replace"), remote=request.remote or "", scheme=exchange.scheme,
        host=urlsplit(f"//{request.host}").hostname or "", user_agent=request.headers.get("User-Agent", ""),
        mac=exchange.phone or (agent.mac if agent else None), model=agent.model if agent else None,
        firmware=agent.version if agent else None, serial=agent.serial if agent else None)


def _plain(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers={"Server": SERVER_HEADER})
