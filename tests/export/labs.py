"""Labs the export tests use: the embedded default lab, and a lab with classes, per-phone
options (43, 125, 159 at phone level, a raw option, `force`) and HTTP Basic auth."""

from __future__ import annotations

from pathlib import Path

from labkit.inventory.load import load
from labkit.plan.build import Plan, build_plan
from tests.helpers import FIRMWARE, default_inventory, write_lab

RICH_LAB = f"""\
lab:
  name: rich
  domain: rich.example
  address: 10.42.0.1/24
  interface: labkit0
  pool: {{start: 10.42.0.100, end: 10.42.0.150}}
  answer: any
services:
  http: {{auth: {{user: phone, password: "s3cret pw"}}}}
  https: {{auth: {{user: phone, password: "s3cret pw"}}}}
dhcp:
  lease_time: 7200
  options:
    tftp_server_name: "10.42.0.1"
    routers: [10.42.0.1]
    224: "0102ff"
  force: [224]
  classes:
    - match: "CP-*-3PCC"
      options:
        provisioning_url: "http://prov.rich.example/cfg"
        provisioning_server: "http://prov.rich.example/$PSN.xml"
    - match: "CP-88*"
      options:
        tftp_servers: [10.42.0.2, 10.42.0.3]
        provisioning_url: "http://prov.rich.example/88xx"
      force: [150]
dns:
  records: {{acs: 10.42.0.1}}
  srv:
    - {{service: _ciscoprov-https._tls, target: prov.rich.example, port: 443}}
  sinkhole: {{names: [activate.cisco.com], address: 10.42.0.1}}
models:
  CP-8851-3PCC:
    firmware: {FIRMWARE}
    options: {{tftp_server_name: "model.rich.example"}}
  CP-7841-3PCC: {{}}
phones:
  - mac: "00:56:2b:00:00:01"
    model: CP-8851-3PCC
    ip: 10.42.0.9
    name: desk-1
    force: [43, 125]
    options:
      vendor_specific: {{tr069: {{acs_url: "https://acs.rich.example/", provisioning_code: p1}}}}
      vendor_identifying:
        - enterprise: 3561
          tr111:
            {{gateway_manufacturer_oui: "00562B", gateway_serial_number: GW1, gateway_product_class: lab}}
      provisioning_server: "https://p1.rich.example/x"
  - mac: "00:56:2b:00:00:02"
    model: CP-7841-3PCC
    options: {{provisioning_url: "http://p2.rich.example/"}}
"""


def default_plan() -> Plan:
    return build_plan(default_inventory())


def rich_plan(folder: Path) -> Plan:
    return build_plan(load(write_lab(folder, RICH_LAB)))
