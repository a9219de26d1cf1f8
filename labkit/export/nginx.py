"""nginx 1.22: HTTP and HTTPS of the rendered tree, as labkit serves it.

The tree is the plan's files (model profiles, per-phone profiles, firmware), byte for byte.
Per-phone profiles get their own route (`/Cisco/<model>/<mac>.cfg`) whose access log names the
phone from its User-Agent, as labkit identifies phones. Basic auth uses an `{SSHA}` user file
(nginx reads it natively); Digest auth, aes128gcm bodies and fault rules have no nginx
equivalent and are reported as gaps.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

from labkit.export.common import (
    ExportError,
    ExportReport,
    fault_gaps,
    service_address,
    service_port,
    write_tree,
)
from labkit.inventory.model import HttpService, Inventory
from labkit.plan.build import Plan

UA_MAP = ('map $http_user_agent $mpp_mac {\n'
          '        default "-";\n'
          '        "~^Cisco-(?<ua_model>[A-Za-z0-9-]+)/(?<ua_fw>[^ ]+) '
          '\\((?<ua_mac>[0-9a-fA-F]{12})\\)" $ua_mac;\n'
          '    }\n')
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def ssha(password: str, salt: bytes | None = None) -> str:
    """An nginx `{SSHA}` password entry: base64(sha1(password + salt) + salt)."""
    salt = salt if salt is not None else os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")


def _auth_lines(name: str, service: HttpService, report: ExportReport, out: Path) -> list[str]:
    auth = service.auth
    if auth is None:
        return []
    if auth.scheme == "digest":
        report.gap(f"services.{name}.auth (digest)", "nginx has no Digest authentication; "
                   "phones would be served without the credentials check")
        return []
    if ":" in auth.user:
        report.gap(f"services.{name}.auth.user", "a user name with ':' cannot go in a user file")
        return []
    users = report.write(out / f"htpasswd-{name}", f"{auth.user}:{ssha(auth.password)}\n")
    users.chmod(0o640)
    report.notes.append(f"{users.name} is mode 0640: give it the group nginx's workers run as "
                        "(chgrp www-data)")
    realm = auth.realm.replace('"', "'")
    return [f'auth_basic "{realm}";', f"auth_basic_user_file {users};"]


def _server(name: str, listen: str, inv: Inventory, plan: Plan, root: Path, report: ExportReport,
            out: Path, tls: list[str]) -> str:
    service: HttpService = getattr(inv.services, name)
    if service.encrypt is not None:
        report.gap(f"services.{name}.encrypt (aes128gcm)", "nginx cannot encrypt bodies with RFC 8188; "
                   "per-phone profiles would go out in clear")
    lines = [f"listen {listen}{' ssl' if tls else ''};", f"server_name {' '.join(plan.tls_names) or '_'};",
             f"root {root};", f"access_log {out}/logs/{name}-access.log labkit;", *tls,
             *_auth_lines(name, service, report, out)]
    for path, moved in sorted(service.redirects.items()):
        lines.append(f"location = {path} {{ return {moved.status} {moved.to}; }}")
    lines += ['location ~ "^/Cisco/[^/]+/[0-9a-f]{12}\\.cfg$" {',
              "    # a per-phone profile: the access log names the phone from its User-Agent",
              "    default_type application/octet-stream;", "    try_files $uri =404;", "}",
              "location ~ \\.xml$ { default_type application/xml; try_files $uri =404; }",
              "location / { default_type application/octet-stream; try_files $uri =404; }"]
    return "    server {\n" + "".join(f"        {line}\n" for line in lines) + "    }\n"


def _tls(plan: Plan, report: ExportReport, out: Path, options: dict[str, Any]) -> list[str]:
    inv = plan.inventory
    tls_dir = out / "tls"
    tls_dir.mkdir(parents=True, exist_ok=True)
    if inv.tls.cert and inv.tls.key:
        base = Path(options.get("base_dir") or ".")
        cert, key = base / inv.tls.cert, base / inv.tls.key
        if not (cert.is_file() and key.is_file()):
            raise ExportError(f"tls.cert/tls.key: {cert} or {key} is not a file (base_dir {base})")
        report.notes.append("HTTPS uses your own certificate (tls.cert / tls.key)")
    else:
        from labkit.tls import ensure_server_certificate

        state = Path(options.get("state_dir") or out / "lab-ca")
        creds = ensure_server_certificate(state, inv.lab.name, plan.tls_names,
                                          [service_address(inv, "https")])
        cert, key = creds.cert_path, creds.key_path
        if creds.ca_path is not None:
            shutil.copyfile(creds.ca_path, tls_dir / "ca.crt")
            report.files.append(tls_dir / "ca.crt")
        report.notes.append(f"HTTPS uses a certificate from the lab CA in {state} (phones must "
                            "trust that CA); for production give tls.cert / tls.key of your own")
    for source, target in ((cert, tls_dir / "server.crt"), (key, tls_dir / "server.key")):
        shutil.copyfile(source, target)
        report.files.append(target)
    (tls_dir / "server.key").chmod(0o600)
    return [f"ssl_certificate {tls_dir / 'server.crt'};", f"ssl_certificate_key {tls_dir / 'server.key'};"]


def nginx_config(plan: Plan, report: ExportReport, out: Path, root: Path, options: dict[str, Any]) -> str:
    inv = plan.inventory
    servers = []
    if inv.services.http.enabled:
        listen = options.get("http_listen") or \
            f"{service_address(inv, 'http')}:{service_port(inv, 'http', 80)}"
        servers.append(_server("http", listen, inv, plan, root, report, out, []))
    if inv.services.https.enabled:
        listen = options.get("https_listen") or \
            f"{service_address(inv, 'https')}:{service_port(inv, 'https', 443)}"
        servers.append(_server("https", listen, inv, plan, root, report, out,
                               _tls(plan, report, out, options)))
    temps = "".join(f"    {t}_temp_path {out}/tmp/{t};\n" for t in TEMP_PATHS)
    return (f"# nginx for lab {inv.lab.name!r}, written by `labkit export --to nginx`.\n"
            f"# check: nginx -t -c {out}/nginx.conf -p {out}/\n"
            f"worker_processes 1;\npid {out}/nginx.pid;\nerror_log {out}/logs/error.log;\n"
            "events { worker_connections 1024; }\nhttp {\n"
            f"    {UA_MAP}"
            "    log_format labkit '$remote_addr phone=$mpp_mac \"$request\" $status $body_bytes_sent '\n"
            "                      '\"$http_user_agent\"';\n"
            f"{temps}    sendfile on;\n    server_tokens off;\n" + "".join(servers) + "}\n")


def export_nginx(plan: Plan, out_dir: Path, **options: Any) -> ExportReport:
    report = ExportReport("nginx", out_dir)
    fault_gaps(report, plan.inventory)
    out = out_dir.resolve()
    for folder in ("logs", *(f"tmp/{t}" for t in TEMP_PATHS)):
        (out / folder).mkdir(parents=True, exist_ok=True)
    root = write_tree(report, plan, out / "www")
    report.write(out_dir / "nginx.conf", nginx_config(plan, report, out, root, options))
    report.notes.append(f"run: nginx -c {out}/nginx.conf -p {out}/ (add `-g 'daemon off;'` to stay in front)")
    return report
