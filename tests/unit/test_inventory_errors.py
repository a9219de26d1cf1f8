"""Bad inventories: each stops with the file, the line the user wrote, the field and what was expected.

Each case is a whole inventory; the line the error must point at carries the comment `#!`.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from labkit.inventory.load import load
from labkit.inventory.source import InventoryError

BASE = """\
{%- set domain = "lab.example" %}
{%- set server = "10.42.0.1" %}
lab:
  domain: {{ domain }}
  address: {{ server }}/24
  pool: {start: 10.42.0.100, end: 10.42.0.199}
dns:
  srv:
    - {service: _ciscoprov-http._tcp, target: prov.{{ domain }}, port: 80}
models:
  CP-8851-3PCC: {}
phones:
{%- for n in range(3) %}
  - mac: "00:56:2b:00:00:{{ '%02x' % n }}"
    model: CP-8851-3PCC
    ip: 10.42.0.{{ 20 + n }}
{%- endfor %}
"""


def marked_line(text: str) -> int:
    lines = [n for n, line in enumerate(text.split("\n"), start=1) if "#!" in line]
    assert len(lines) == 1, "each case marks exactly one line"
    return lines[0]


def load_text(tmp_path: Path, text: str):
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    return load(path)


def expect_error(tmp_path: Path, text: str, field: str, *fragments: str) -> InventoryError:
    with pytest.raises(InventoryError) as info:
        load_text(tmp_path, text)
    error = info.value
    errors = [p for p in error.problems if p.severity == "error"]
    matching = [p for p in errors if p.field == field]
    assert matching, f"no error on {field!r}; got: {error.render()}"
    problem = matching[0]
    assert problem.location is not None
    assert problem.location.file == str(tmp_path / "lab.yaml")
    assert problem.location.traced
    assert problem.location.line == marked_line(text), error.render()
    for fragment in fragments:
        assert fragment in problem.message, problem.message
    rendered = error.render()
    assert f"lab.yaml:{marked_line(text)}: error: {field}:" in rendered
    return error


def test_base_inventory_is_valid(tmp_path: Path) -> None:
    loaded = load_text(tmp_path, BASE)
    assert [p.mac for p in loaded.inventory.phones] == [
        "00:56:2b:00:00:00", "00:56:2b:00:00:01", "00:56:2b:00:00:02"]


def test_unknown_key_is_an_error_with_suggestions(tmp_path: Path) -> None:
    text = BASE.replace("  domain: {{ domain }}", "  domian: {{ domain }}  #!")
    error = expect_error(tmp_path, text, "lab.domian", "unknown key 'domian'", "domain")
    assert "expected one of" in error.render()


def test_bad_mac_names_the_phone(tmp_path: Path) -> None:
    text = BASE.replace('{%- endfor %}\n', '{%- endfor %}\n  - mac: "00:56:zz:00:00:09"  #!\n'
                        '    model: CP-8851-3PCC\n    ip: 10.42.0.50\n')
    expect_error(tmp_path, text, "phones[3].mac", "MAC")


def test_duplicate_mac_inside_a_loop_points_at_the_loop_body(tmp_path: Path) -> None:
    text = BASE.replace("""  - mac: "00:56:2b:00:00:{{ '%02x' % n }}\"""",
                        """  - mac: "00:56:2b:00:00:{{ '%02x' % (n // 2) }}"  #!""")
    expect_error(tmp_path, text, "phones[1].mac", "also phones[0]")


def test_duplicate_fixed_ip(tmp_path: Path) -> None:
    text = BASE.replace("ip: 10.42.0.{{ 20 + n }}", "ip: 10.42.0.{{ 20 + n // 3 }}  #!")
    expect_error(tmp_path, text, "phones[1].ip", "also phones[0]")


def test_fixed_ip_outside_the_subnet(tmp_path: Path) -> None:
    text = BASE.replace("ip: 10.42.0.{{ 20 + n }}", "ip: 10.43.0.{{ 20 + n }}  #!")
    expect_error(tmp_path, text, "phones[0].ip", "outside the lab subnet 10.42.0.0/24")


def test_fixed_ip_inside_the_pool(tmp_path: Path) -> None:
    text = BASE.replace("ip: 10.42.0.{{ 20 + n }}", "ip: 10.42.0.{{ 120 + n }}  #!")
    expect_error(tmp_path, text, "phones[0].ip", "inside the dynamic pool")


def test_srv_target_without_address_record(tmp_path: Path) -> None:
    text = BASE.replace("target: prov.{{ domain }}, port: 80}", "target: web.{{ domain }}, port: 80}  #!")
    expect_error(tmp_path, text, "dns.srv[0].target", "web.lab.example has no A record")


def test_unknown_model(tmp_path: Path) -> None:
    text = BASE.replace("    model: CP-8851-3PCC\n", "    model: CP-8861-3PCC  #!\n")
    expect_error(tmp_path, text, "phones[0].model", "unknown model 'CP-8861-3PCC'", "CP-8851-3PCC")


def test_missing_profile_template(tmp_path: Path) -> None:
    text = BASE + "profiles:\n  template: bench.xml.j2  #!\n"
    expect_error(tmp_path, text, "profiles.template", "'bench.xml.j2' not found")


def test_option_150_with_a_bad_address(tmp_path: Path) -> None:
    text = BASE + "dhcp:\n  options:\n    tftp_servers: [10.42.0.1, 10.42.0.300]  #!\n"
    expect_error(tmp_path, text, "dhcp.options.tftp_servers[1]", "IPv4")


def test_option_written_as_a_code_is_located_at_the_code(tmp_path: Path) -> None:
    text = BASE + "dhcp:\n  options:\n    160: \"http://prov.l\u00e4b.example\"  #!\n"
    expect_error(tmp_path, text, "dhcp.options.provisioning_url", "ASCII")


def test_option_43_needs_exactly_one_form(tmp_path: Path) -> None:
    text = BASE + textwrap.dedent("""\
        dhcp:
          options:
            vendor_specific:  #!
              tr069: {acs_url: "http://acs.lab.example"}
              suboptions: {1: "x"}
        """)
    expect_error(tmp_path, text, "dhcp.options.vendor_specific", "exactly one of")


def test_reserved_option_code(tmp_path: Path) -> None:
    text = BASE + "dhcp:\n  options:\n    53: 1  #!\n"
    expect_error(tmp_path, text, "dhcp.options", "option 53 is set by the server or the client")


def test_undefined_template_variable(tmp_path: Path) -> None:
    text = BASE.replace("  address: {{ server }}/24", "  address: {{ srever }}/24  #!")
    with pytest.raises(InventoryError) as info:
        load_text(tmp_path, text)
    problem = info.value.problems[0]
    assert problem.location is not None and problem.location.line == marked_line(text)
    assert "'srever' is undefined" in problem.message


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    text = BASE.replace("  pool: {start: 10.42.0.100, end: 10.42.0.199}",
                        "  pool: {start: 10.42.0.100, end: 10.42.0.199  #!")
    with pytest.raises(InventoryError) as info:
        load_text(tmp_path, text)
    problem = info.value.problems[0]
    assert "YAML syntax error" in problem.message
    assert problem.location is not None and problem.location.traced
    # the parser notices the missing brace on the next line at the latest
    assert problem.location.line in (marked_line(text), marked_line(text) + 1)


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    text = BASE.replace("  domain: {{ domain }}\n", "  domain: {{ domain }}\n  domain: other.example  #!\n")
    expect_error(tmp_path, text, "lab.domain", "duplicate key")


def test_certificate_names_must_cover_srv_targets(tmp_path: Path) -> None:
    text = BASE.replace("- {service: _ciscoprov-http._tcp", "- {service: _ciscoprov-https._tls") + (
        "tls:\n  names: [other.lab.example]  #!\n")
    expect_error(tmp_path, text, "tls.names", "prov.lab.example is missing")


def test_missing_required_field(tmp_path: Path) -> None:
    text = BASE.replace("  address: {{ server }}/24\n", "").replace("lab:\n", "lab:  #!\n")
    expect_error(tmp_path, text, "lab.address", "required")


def test_untraceable_line_shows_rendered_context(tmp_path: Path) -> None:
    # the whole `lab:` mapping comes out of one expression: no template line to point at
    text = '{{ "lab:\\n  domain: lab.example\\n  adress: 10.0.0.1/24\\n  x: 1" }}\n'
    with pytest.raises(InventoryError) as info:
        load_text(tmp_path, text)
    unknown = [p for p in info.value.problems if p.field == "lab.adress"]
    assert unknown and unknown[0].location is not None
    assert not unknown[0].location.traced
    assert unknown[0].location.line == 3  # in the rendered YAML
    rendered = info.value.render()
    assert "rendered YAML line 3" in rendered and "adress: 10.0.0.1/24" in rendered


def test_warnings_do_not_stop_the_kit(tmp_path: Path) -> None:
    text = BASE.replace("  CP-8851-3PCC: {}", "  CP-8851-3PCC: {firmware: sip88xx.loads}") + (
        "dhcp:\n  options:\n    tftp_server_name: tftp.elsewhere.example\n    tftp_servers: [10.9.9.9]\n")
    loaded = load_text(tmp_path, text)
    messages = {w.field: w.message for w in loaded.warnings}
    assert "not in" in messages["models.CP-8851-3PCC.firmware"]
    assert "does not resolve" in messages["dhcp.options.tftp_server_name"]
    assert "not an address of this kit" in messages["dhcp.options.tftp_servers"]
    assert all(w.severity == "warning" for w in loaded.warnings)


def test_check_command_exits_1_and_names_file_line_field(tmp_path: Path) -> None:
    text = BASE.replace("    model: CP-8851-3PCC\n", "    model: CP-8861-3PCC  #!\n")
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    result = subprocess.run([sys.executable, "-m", "labkit", "check", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"{path}:{marked_line(text)}: error: phones[0].model: unknown model" in result.stderr
    assert "nothing was started" in result.stderr
