"""The command line reads well: -h, --version, words for option types, help on every option,
completion, `scenario --list`, and commands that refuse what would surprise."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from typer.testing import CliRunner

from labkit import __version__
from labkit.cli import app
from labkit.scenarios import names
from tests.helpers import write_lab

runner = CliRunner()
WIDE = {"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=WIDE, prog_name="labkit")
    return result.exit_code, result.stdout, result.stderr


def commands() -> dict[str, typer.core.TyperCommand]:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    return dict(group.commands)  # type: ignore[arg-type]


def test_dash_h_and_version() -> None:
    code, text, _ = run("-h")
    assert code == 0 and "Usage: labkit" in text and "--install-completion" in text
    code, text, _ = run("up", "-h")
    assert code == 0 and "Usage: labkit up" in text
    code, text, _ = run("--version")
    assert code == 0 and text.strip() == f"labkit {__version__}"


def test_every_option_and_argument_has_help() -> None:
    missing = [f"{name} {param.name}" for name, command in commands().items() for param in command.params
               if not (getattr(param, "help", None) or "").strip()]
    assert missing == []


def test_option_types_read_as_words() -> None:
    for name in commands():
        code, text, _ = run(name, "--help")
        assert code == 0, text
        assert not re.search(r"<(bool|int|float|path|str|text|list\[[a-z]+\])>", text), (name, text)
    _, text, _ = run("up", "--help")
    assert re.search(r"--loopback\s+Bind every", text)  # a flag: no type at all
    assert re.search(r"--port-offset\s+N\s", text) and re.search(r"--state\s+DIR\s", text)
    assert "[INVENTORY]" in text
    _, text, _ = run("demo", "--help")
    assert re.search(r"--time-scale\s+FACTOR\s.*Phone seconds per wall second", text)


def test_scenario_list_gives_one_line_each_with_its_description() -> None:
    code, text, _ = run("scenario", "--list")
    lines = text.strip().splitlines()
    assert code == 0 and len(lines) == len(names())
    for line, name in zip(lines, names(), strict=True):
        assert line.startswith(name) and len(line[len(name):].split()) >= 4, line


def test_render_refuses_to_delete_files_it_did_not_write(tmp_path: Path) -> None:
    lab = write_lab(tmp_path / "lab")
    out = tmp_path / "out"
    assert run("render", str(lab), "-o", str(out))[0] == 0
    assert run("render", str(lab), "-o", str(out))[0] == 0  # its own files: replaced quietly
    mine = out / "files" / "notes.txt"
    mine.write_text("keep me\n")
    code, _, err = run("render", str(lab), "-o", str(out))
    assert code == 1 and "1 file(s) labkit did not write" in err and "files/notes.txt" in err
    assert "--force" in err and mine.read_text() == "keep me\n"
    code, _, _ = run("render", str(lab), "-o", str(out), "--force")
    assert code == 0 and not mine.exists() and (out / "dhcp.json").is_file()


def test_leases_without_a_state_folder_is_an_error(tmp_path: Path) -> None:
    code, _, err = run("leases", "--state", str(tmp_path / "nonexistent"))
    assert code == 1 and "no state folder" in err


def test_simulate_generated_phones_against_an_inventory_only_lab_says_so(tmp_path: Path) -> None:
    code, _, err = run("simulate", str(write_lab(tmp_path)), "--phones", "5")
    assert code == 1 and "lab.answer: inventory" in err and "answer: any" in err


def test_timeline_command_reads_since_and_last_boot(tmp_path: Path) -> None:
    import time

    from tests.helpers import event

    mac = "00:56:2b:00:00:01"
    now = time.time()
    log = tmp_path / "events.jsonl"
    boots = [event(now - 7200 + 0.5 * n, "dhcp", action="discover", phone=mac, request="DISCOVER")
             for n in range(2)] + [event(now - 60, "dhcp", action="discover", phone=mac, request="DISCOVER")]
    log.write_text("".join(e.to_json() + "\n" for e in boots))
    code, text, _ = run("timeline", mac, "--log", str(log))
    assert code == 0 and "--- boot 1 at" in text and "--- boot 2 at" in text and "2 boot(s)" in text
    code, text, _ = run("timeline", mac, "--log", str(log), "--last-boot")
    assert code == 0 and "--- boot 2 at" in text and "--- boot 1 " not in text
    code, text, _ = run("timeline", mac, "--log", str(log), "--since", "10m")
    assert code == 0 and "1 of 3 events" in text
    code, _, err = run("timeline", mac, "--log", str(log), "--since", "soon")
    assert code == 2 and "--since" in err and "neither a duration" in err


def test_a_mac_address_prints_as_written() -> None:
    """rich reads ':ab:' and ':cd:' as emoji names by default; a MAC must come out unchanged."""
    from labkit.cli.common import err, out

    mac = "00:ab:cd:0e:ab:cd"
    for console in (out, err):
        with console.capture() as captured:
            console.print(f"lease {mac} refused")
        assert captured.get().strip() == f"lease {mac} refused"
