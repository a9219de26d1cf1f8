"""The MPP macro engine (reference §3.1, §3.2)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.errors import CodecError
from labkit.macros import expand, identity_macros, normalize_mac, psn_for_model

PHONE = identity_macros(mac="00:0E:08:AA:BB:CC", model="CP-8851-3PCC", serial="88012BA01234")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/$MA.cfg", "/000e08aabbcc.cfg"),
        ("/$MAU.cfg", "/000E08AABBCC.cfg"),
        ("$MAC", "00:0e:08:aa:bb:cc"),
        ("/$(MA).cfg", "/000e08aabbcc.cfg"),
        ("/$PSN.xml", "/8851-3PCC.xml"),
        ("/Cisco/$PN/$MA.cfg", "/Cisco/CP-8851-3PCC/000e08aabbcc.cfg"),
        ("$PN $MAC -- Requesting", "CP-8851-3PCC 00:0e:08:aa:bb:cc -- Requesting"),
        ("$SN", "88012BA01234"),
        ("no macros at all", "no macros at all"),
        ("", ""),
    ],
)
def test_identity_macros_in_rules(text: str, expected: str) -> None:
    assert expand(text, PHONE) == expected


def test_substrings_from_the_guide() -> None:
    values = {"A": "ABCDEF"}
    assert expand("$(A:2)", values) == "CDEF"
    assert expand("$(A:2:3)", values) == "CDE"
    assert expand("$(A:0)", values) == "ABCDEF"
    assert expand("$(A:0:0)", values) == ""
    # Past the end is empty or cut short, as slicing is.
    assert expand("$(A:9)", values) == ""
    assert expand("$(A:4:10)", values) == "EF"


def test_dollar_dollar_is_a_dollar() -> None:
    assert expand("$$", {}) == "$"
    assert expand("$$MA", PHONE) == "$MA"
    assert expand("cost $$5", {}) == "cost $5"
    assert expand("$$$MA", PHONE) == "$000e08aabbcc"


def test_unknown_names_stay_verbatim() -> None:
    assert expand("$XYZ", PHONE) == "$XYZ"
    assert expand("$(XYZ)", PHONE) == "$(XYZ)"
    assert expand("$(XYZ:1:2)", PHONE) == "$(XYZ:1:2)"
    assert expand("/$SERVIP:$PORT", {}) == "/$SERVIP:$PORT"


def test_lone_and_malformed_dollars_are_literal() -> None:
    assert expand("$", PHONE) == "$"
    assert expand("a$", PHONE) == "a$"
    assert expand("$ma", PHONE) == "$ma"  # names are upper case
    assert expand("$1", PHONE) == "$1"
    assert expand("$(MA", PHONE) == "$(MA"
    assert expand("$(MA:)", PHONE) == "$(MA:)"
    assert expand("$(MA:x)", PHONE) == "$(MA:x)"
    assert expand("$()", PHONE) == "$()"


def test_longest_known_prefix_wins_and_the_rest_is_literal() -> None:
    values = {"M": "m", "MA": "ma", "MAC": "mac"}
    assert expand("$MAC", values) == "mac"
    assert expand("$MA", values) == "ma"
    assert expand("$MAX", values) == "maX"
    assert expand("$MB", values) == "mB"
    assert expand("$MACMA", values) == "macMA"  # the literal tail is not re-scanned for $
    assert expand("$UID1", {"UID1": "1001"}) == "1001"
    assert expand("$A$B", {"A": "1", "B": "2"}) == "12"


def test_expansion_is_not_recursive() -> None:
    values = {"A": "$MA", "B": "$(MA)", "MA": "x"}
    assert expand("$A $B", values) == "$MA $(MA)"
    assert expand("$(A:0:3)", values) == "$MA"


def test_parenthesised_form_has_no_prefix_matching() -> None:
    assert expand("$(MAX)", {"MA": "x"}) == "$(MAX)"


@given(st.text())
def test_no_known_names_is_identity_except_double_dollar(text: str) -> None:
    # `$$` pairs are taken left to right, exactly as str.replace does.
    assert expand(text, {}) == text.replace("$$", "$")


@given(
    st.text(alphabet=st.characters(blacklist_characters="$")),
    st.text(),
)
def test_values_are_copied_verbatim(prefix: str, value: str) -> None:
    assert expand(prefix + "$(V)" + prefix, {"V": value}) == prefix + value + prefix


@pytest.mark.parametrize(
    "text",
    ["00:0E:08:AA:BB:CC", "00-0e-08-aa-bb-cc", "000e.08aa.bbcc", "000e08aabbcc", " 000E08AABBCC\n"],
)
def test_normalize_mac_forms(text: str) -> None:
    assert normalize_mac(text) == "00:0e:08:aa:bb:cc"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "000e08aabbc",
        "000e08aabbccd",
        "00:0e:08:aa:bb",
        "00:0e-08:aa:bb:cc",
        "000e.08aa.bbc",
        "gg0e08aabbcc",
        "00:0e:08:aa:bb:c",
        "0:0e:08:aa:bb:cc0",
        "٠٠0e08aabbcc",  # Arabic-Indic digits are not hex
    ],
)
def test_normalize_mac_rejects(text: str) -> None:
    with pytest.raises(CodecError):
        normalize_mac(text)


@given(st.binary(min_size=6, max_size=6))
def test_normalize_mac_all_forms_agree(raw: bytes) -> None:
    bare = raw.hex()
    colon = ":".join(bare[k : k + 2] for k in range(0, 12, 2))
    forms = [
        bare,
        bare.upper(),
        colon.upper(),
        colon.replace(":", "-"),
        ".".join(bare[k : k + 4] for k in range(0, 12, 4)),
    ]
    assert {normalize_mac(form) for form in forms} == {colon}


@given(st.text())
def test_normalize_mac_raises_only_codec_error(text: str) -> None:
    try:
        result = normalize_mac(text)
    except CodecError:
        return
    assert re.fullmatch(r"(?:[0-9a-f]{2}:){5}[0-9a-f]{2}", result)


@pytest.mark.parametrize(
    ("model", "psn"),
    [
        ("CP-8851-3PCC", "8851-3PCC"),
        ("CP-6841-3PCC", "6841-3PCC"),
        ("CP-7832-3PCC", "7832-3PCC"),
        ("8851-3PCC", "8851-3PCC"),
        ("SPA504G", "SPA504G"),
    ],
)
def test_psn_for_model(model: str, psn: str) -> None:
    assert psn_for_model(model) == psn


def test_identity_macros_full() -> None:
    macros = identity_macros(
        mac="000e.08aa.bbcc",
        model="CP-6841-3PCC",
        serial="FCH1234",
        ip="192.0.2.10",
        sw_version="sip68xx.12-0-1MPP",
        hw_version="2.0.1",
    )
    assert macros == {
        "MA": "000e08aabbcc",
        "MAU": "000E08AABBCC",
        "MAC": "00:0e:08:aa:bb:cc",
        "PN": "CP-6841-3PCC",
        "PSN": "6841-3PCC",
        "SN": "FCH1234",
        "IP": "192.0.2.10",
        "SWVER": "sip68xx.12-0-1MPP",
        "HWVER": "2.0.1",
    }


def test_identity_macros_minimal_leaves_optional_ones_out() -> None:
    macros = identity_macros(mac="000e08aabbcc", model="CP-8851-3PCC")
    assert set(macros) == {"MA", "MAU", "MAC", "PN", "PSN"}
    # So an unknown optional macro stays verbatim in a rule rather than becoming empty.
    assert expand("/$SN.cfg", macros) == "/$SN.cfg"


def test_identity_macros_rejects_bad_input() -> None:
    with pytest.raises(CodecError):
        identity_macros(mac="not-a-mac", model="CP-8851-3PCC")
    with pytest.raises(CodecError):
        identity_macros(mac="000e08aabbcc", model="CP-8851-3PCC", ip="300.1.1.1")
