"""Profiles and firmware: the file tree TFTP and HTTP serve.

A factory phone fetches `/$PSN.xml` first (reference §1.3); other firmware asks for `/$PN.cfg`,
or for its own file `/Cisco/$MA.cfg` (issue 11). The kit serves every documented name by
default (`profiles.factory_names`, per model `models.X.factory_names`): the per-model names hold
the bootstrap profile, the per-phone names the phone's full profile. The bootstrap profile
points its Profile_Rule at a per-phone name (`/Cisco/$PN/$MA.cfg` when served, macros left for
the phone to expand, so one file serves every phone of the model) and its Upgrade_Rule at the
model's firmware.
The per-phone file carries the full configuration: global -> model -> phone parameters and
the lines. Only the per-phone file is compressed or encrypted: a factory phone has no key.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from labkit import macros
from labkit.errors import CodecError, LabkitError
from labkit.formats import flat_profile, openssl_enc
from labkit.formats.flat_profile import Param
from labkit.inventory import names
from labkit.inventory.load import LoadedInventory, default_lab_dir
from labkit.inventory.model import Inventory, ParamSpec, Phone
from labkit.phone import traits

DEFAULT_PHONE_TEMPLATE = "phone.xml.j2"
DEFAULT_MODEL_TEMPLATE = "model.xml.j2"
DEFAULT_PORTS = {"tftp": 69, "http": 80, "https": 443}
PHONE_PROFILE_PATH = traits.CISCO_PN_MA
MODEL_PROFILE_PATH = traits.PSN_XML


def served_names(inv: Inventory, model: str) -> tuple[str, ...]:
    """The factory names the kit serves for `model`'s phones, in the documented order."""
    m = inv.models.get(model)
    chosen = m.factory_names if m is not None and m.factory_names is not None else inv.profiles.factory_names
    return tuple(name for name in traits.FACTORY_NAMES if name in chosen)


def phone_profile_path(inv: Inventory, model: str) -> str:
    """Where the kit's Profile_Rule sends the model's phones: `/Cisco/$PN/$MA.cfg` when served."""
    served = served_names(inv, model)
    return PHONE_PROFILE_PATH if PHONE_PROFILE_PATH in served else traits.CISCO_MA


@dataclass(frozen=True, slots=True)  # slots: one per phone, ~350 -> ~120 bytes each
class PlannedFile:
    """One file of the served tree: bytes in memory, or a file on disk streamed on demand."""

    path: str  # relative, no leading slash: "8851-3PCC.xml", "Cisco/CP-8851-3PCC/00562b000101.cfg"
    kind: str  # "model profile", "phone profile", "firmware"
    data: bytes | None = None
    disk_path: Path | None = None
    model: str | None = None
    mac: str | None = None
    encrypted: bool = False
    gzipped: bool = False

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        return self.disk_path.stat().st_size if self.disk_path else 0


class ProfileError(LabkitError):
    """A profile template failed to render or rendered something a phone cannot read."""


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"  # MPP booleans are Yes/No
    return str(value)


def _params(spec: Mapping[str, Any]) -> dict[str, Param]:
    out: dict[str, Param] = {}
    for name, value in spec.items():
        if isinstance(value, ParamSpec):
            out[name] = Param(name, _text(value.value), value.access)
        else:
            out[name] = Param(name, _text(value))
    return out


def rule_url(inv: Inventory, path: str) -> str:
    """`scheme://host[:port]path` for a rule the kit writes, default ports left out."""
    scheme = inv.profiles.scheme
    host = names.provisioning_host(inv)
    port = getattr(inv.services, scheme).port or DEFAULT_PORTS[scheme]
    port_text = "" if port == DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{host}{port_text}{path}"


def profile_rule(inv: Inventory, model: str | None = None) -> str:
    """The Profile_Rule every phone is given: its own file, with `--key` when encrypted."""
    url = rule_url(inv, phone_profile_path(inv, model) if model is not None else PHONE_PROFILE_PATH)
    enc = inv.profiles.encryption
    return f"[--key {quote_rule_value(enc.key)}]{url}" if enc else url


def quote_rule_value(value: str) -> str:
    """A rule option value as MPP reads it: double-quoted when it holds spaces or specials, with
    `"` and `\\` escaped in octal (`\\042`, `\\134`), as reference §3.1 describes."""
    if value and not any(c in value for c in ' \t"\\[]|;'):
        return value
    return '"' + value.replace("\\", "\\134").replace('"', "\\042") + '"'



def upgrade_rule(inv: Inventory, model: str) -> str | None:
    firmware = inv.models[model].firmware
    return rule_url(inv, "/" + firmware) if firmware else None


def firmware_version(inv: Inventory, model: str) -> str | None:
    m = inv.models[model]
    if m.firmware_version:
        return m.firmware_version
    return m.firmware.removesuffix(".loads") if m.firmware else None


def line_params(phone: Phone) -> dict[str, Param]:
    """Flat-profile parameters for the phone's lines (`Display_Name_1_` ...)."""
    out: dict[str, Param] = {}
    fields = {
        "extension": "Extension_{n}_",
        "display_name": "Display_Name_{n}_",
        "user_id": "User_ID_{n}_",
        "password": "Password_{n}_",
        "auth_id": "Auth_ID_{n}_",
        "proxy": "Proxy_{n}_",
    }
    for n, line in enumerate(phone.lines, start=1):
        out[f"Line_Enable_{n}_"] = Param(f"Line_Enable_{n}_", "Yes")
        for attr, template in fields.items():
            value = getattr(line, attr)
            if value is not None:
                name = template.format(n=n)
                out[name] = Param(name, value, "na" if attr == "password" else None)
    return out


def model_params(inv: Inventory, model: str) -> list[Param]:
    # the kit's rules first: a Profile_Rule or Upgrade_Rule the inventory sets itself wins
    merged = _rules(inv, model) | _params(inv.profiles.params) | _params(inv.models[model].params)
    return list(merged.values())


def phone_params(inv: Inventory, phone: Phone) -> list[Param]:
    merged: dict[str, Param] = {}
    if phone.name:
        merged["Station_Name"] = Param("Station_Name", phone.name)
    merged |= _params(inv.profiles.params) | _params(inv.models[phone.model].params)
    merged |= line_params(phone)
    merged |= _params(phone.params)
    rules = _rules(inv, phone.model)
    for name, rule in rules.items():  # the kit's rule unless the inventory set one at any level
        merged.setdefault(name, rule)
    return list(merged.values())


def _rules(inv: Inventory, model: str) -> dict[str, Param]:
    rules = {"Profile_Rule": Param("Profile_Rule", profile_rule(inv, model))}
    upgrade = upgrade_rule(inv, model)
    if upgrade:
        rules["Upgrade_Rule"] = Param("Upgrade_Rule", upgrade)
    return rules


class ProfileRenderer:
    """Renders profile templates in a sandbox; user templates first, the built-ins after."""

    def __init__(self, loaded: LoadedInventory) -> None:
        self.loaded = loaded
        search = [str(loaded.templates_dir), str(default_lab_dir() / "templates")]
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(search),
            undefined=jinja2.StrictUndefined,
            autoescape=True,  # profile values land in XML
            keep_trailing_newline=True,
        )

    def render(self, template: str, context: dict[str, Any], identity: dict[str, str]) -> bytes:
        self.env.filters["expand"] = lambda text: macros.expand(str(text), identity)
        try:
            text = self.env.get_template(template).render(**context)
        except jinja2.TemplateError as exc:
            raise ProfileError(f"profile template {template}: {exc}") from None
        try:
            data = text.encode("ascii")
            flat_profile.parse(data)  # what a phone would do; a broken profile never leaves
        except UnicodeEncodeError:
            raise ProfileError(f"profile template {template} rendered non-ASCII text, "
                               "which MPP firmware cannot read") from None
        except CodecError as exc:
            raise ProfileError(f"profile template {template} rendered an unreadable profile: {exc}"
                               ) from None
        return data


def plan_files(loaded: LoadedInventory) -> dict[str, PlannedFile]:
    """Every file of the served tree, keyed by path without the leading slash."""
    inv = loaded.inventory
    renderer = ProfileRenderer(loaded)
    files: dict[str, PlannedFile] = {}
    bodies: dict[bytes, bytes] = {}
    for model in inv.models:
        identity = {"PN": model, "PSN": macros.psn_for_model(model)}
        context = {"lab": inv.lab, "inventory": inv, "model": model, "phone": None,
                   "params": model_params(inv, model), "identity": identity,
                   "kind": "model profile"}
        data = renderer.render(inv.profiles.model_template or DEFAULT_MODEL_TEMPLATE, context, identity)
        for name in served_names(inv, model):
            if name in traits.MODEL_NAMES:
                path = macros.expand(name, identity).lstrip("/")
                files[path] = PlannedFile(path, "model profile", data=data, model=model)
        m = inv.models[model]
        if m.firmware:
            disk = loaded.firmware_dir / m.firmware
            if disk.is_file():
                files[m.firmware] = PlannedFile(m.firmware, "firmware", disk_path=disk, model=model)
    for phone in inv.phones:
        identity = phone_identity(phone)
        rendered: bytes | None = None  # rendered once, whatever the number of names it is served at
        for name in served_names(inv, phone.model):
            if name in traits.PHONE_NAMES:
                path = macros.expand(name, identity).lstrip("/")
                if rendered is None:
                    rendered = _render_phone(inv, renderer, phone, identity)
                files[path] = _phone_file(inv, phone, path, rendered, bodies)
    return files


def _render_phone(inv: Inventory, renderer: ProfileRenderer, phone: Phone, identity: dict[str, str]) -> bytes:
    context = {"lab": inv.lab, "inventory": inv, "model": phone.model, "phone": phone,
               "params": phone_params(inv, phone), "identity": identity,
               "kind": "phone profile"}
    data = renderer.render(inv.profiles.template or DEFAULT_PHONE_TEMPLATE, context, identity)
    if inv.profiles.gzip:
        data = gzip.compress(data, mtime=0)  # mtime 0: the same inventory renders the same bytes
    return data


def _phone_file(inv: Inventory, phone: Phone, path: str, data: bytes,
                bodies: dict[bytes, bytes]) -> PlannedFile:
    """The phone's full profile at `path`, encrypted when the inventory says so."""
    gzipped = inv.profiles.gzip
    enc = inv.profiles.encryption
    if enc is not None:
        # salt from the content: the same inventory renders the same bytes
        salt = hashlib.sha256(enc.key.encode() + path.encode() + data).digest()[:8]
        data = openssl_enc.encrypt(data, enc.key, digest=enc.digest, salt=salt)
    data = bodies.setdefault(data, data)  # phones whose profiles are identical share the bytes
    return PlannedFile(path, "phone profile", data=data, model=phone.model,
                       mac=phone.mac, encrypted=enc is not None, gzipped=gzipped)


def phone_identity(phone: Phone) -> dict[str, str]:
    return macros.identity_macros(mac=phone.mac, model=phone.model, serial=phone.serial,
                                  ip=str(phone.ip) if phone.ip else None)
