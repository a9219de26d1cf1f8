"""The emulated cloud on the HTTPS service (`cloud: {mode: emulate}`): a certificate from the
lab CA for the activation names, chosen by SNI, and the lab activation service's answer.

The request shape is labkit's own [I] (labkit.plan.cloud): the phone asks
`GET https://<cloud name>/lab/v1/activation?mac=$MA&model=$PN&serial=$SN[&code=CODE]`.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path

from labkit.macros import normalize_mac
from labkit.plan.cloud import CloudPlan
from labkit.tls import ensure_cloud_certificate, server_ssl_context


class CloudTls:
    """The SNI switch: a client naming a cloud name gets the cloud certificate, others the
    service's own. Follows reloads (`take`)."""

    def __init__(self) -> None:
        self.names: frozenset[str] = frozenset()
        self.context: ssl.SSLContext | None = None
        self._made_for: tuple[str, tuple[str, ...]] | None = None

    def take(self, cloud: CloudPlan | None, state_dir: Path, keylog: Path | None) -> None:
        """Issue (or reuse) the cloud certificate for `cloud`'s names; none when sinkholed."""
        if cloud is None or not cloud.names:
            self.names, self.context = frozenset(), None
            return
        wanted = (cloud.lab_name, cloud.names)
        if self.context is None or self._made_for != wanted:
            credentials = ensure_cloud_certificate(state_dir, cloud.lab_name, cloud.names)
            self.context = server_ssl_context(credentials, keylog=keylog)
            self._made_for = wanted
        self.names = frozenset(n.lower() for n in cloud.names)

    def install(self, context: ssl.SSLContext) -> None:
        context.sni_callback = self._sni

    def _sni(self, sock: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        if name is not None and self.context is not None and _covered(name.lower(), self.names):
            sock.context = self.context
        return None


def _covered(name: str, names: frozenset[str]) -> bool:
    """A cloud name or a name below one (the DNS answers those too)."""
    return name in names or any(name.endswith("." + n) for n in names)


def asking_mac(query: Mapping[str, str]) -> str | None:
    """The MAC an activation request names (for the event's phone), if it names one."""
    try:
        return normalize_mac(query.get("mac", ""))
    except Exception:
        return None
