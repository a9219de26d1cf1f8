"""The XML flat profile (reference §4.1): render, and parse as the phone reads it."""

from __future__ import annotations

import contextlib
import time
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.errors import CodecError
from labkit.formats.flat_profile import (
    Param,
    _GuardedTreeBuilder,
    is_valid_name,
    parse,
    render,
)


def test_render_layout() -> None:
    body = render(
        [
            Param("Profile_Rule", "http://192.0.2.1/$PSN.xml", "na"),
            Param("Display_Name_1_", "Lab & <Phone>"),
            Param("GPP_A", ""),
        ]
    )
    assert body == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b"<device>\n"
        b"<flat-profile>\n"
        b'  <Profile_Rule ua="na">http://192.0.2.1/$PSN.xml</Profile_Rule>\n'
        b"  <Display_Name_1_>Lab &amp; &lt;Phone&gt;</Display_Name_1_>\n"
        b"  <GPP_A></GPP_A>\n"
        b"</flat-profile>\n"
        b"</device>\n"
    )


def test_render_without_device_wrapper() -> None:
    body = render([Param("GPP_B", "x", "ro")], device_wrapper=False)
    assert body == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b"<flat-profile>\n"
        b'  <GPP_B ua="ro">x</GPP_B>\n'
        b"</flat-profile>\n"
    )


def test_render_empty() -> None:
    assert parse(render([])) == {}


@pytest.mark.parametrize(
    "param",
    [
        Param("Display_Name_1_", "Jürgen"),  # the firmware only supports ASCII
        Param("1_Starts_With_Digit", "x"),
        Param("Has Space", "x"),
        Param("ns:Name", "x"),
        Param("", "x"),
        Param("xmlThing", "x"),
        Param("Name", "bell\x07"),
        Param("Name", "x", "rx"),  # type: ignore[arg-type]
    ],
)
def test_render_rejects(param: Param) -> None:
    with pytest.raises(CodecError):
        render([param])


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("Profile_Rule", True),
        ("Profile_Rule_B", True),
        ("Dial_Plan_1_", True),
        ("_x", True),
        ("a-b.c", True),
        ("flat-profile", True),
        ("", False),
        ("1abc", False),
        ("-abc", False),
        ("a:b", False),
        ("a b", False),
        ("XML_Thing", False),
        ("Ñame", False),
        ("a/b", False),
    ],
)
def test_is_valid_name(name: str, valid: bool) -> None:
    assert is_valid_name(name) is valid


def test_parse_cisco_example_with_device_wrapper() -> None:
    body = b"""<?xml version="1.0" encoding="UTF-8"?>
<device>
<flat-profile>
  <Resync_Periodic>3600</Resync_Periodic>
  <Profile_Rule ua="na">http://192.0.2.1/cfg/$MA.xml</Profile_Rule>
  <Station_Name ua="rw">Lab</Station_Name>
</flat-profile>
</device>
"""
    assert parse(body) == {
        "Resync_Periodic": Param("Resync_Periodic", "3600"),
        "Profile_Rule": Param("Profile_Rule", "http://192.0.2.1/cfg/$MA.xml", "na"),
        "Station_Name": Param("Station_Name", "Lab", "rw"),
    }


def test_parse_bare_flat_profile_without_declaration() -> None:
    assert parse(b"<flat-profile><GPP_A>1</GPP_A></flat-profile>") == {"GPP_A": Param("GPP_A", "1")}


def test_parse_phone_rules() -> None:
    body = b"""\xef\xbb\xbf
  <?xml version="1.0" encoding="ISO-8859-1"?>
<flat-profile>
  <GPP_A>first</GPP_A>
  <gpp_a>other case</gpp_a>
  <GPP_B>
     padded value\t
  </GPP_B>
  <GPP_C>line one
line two\r\nline three</GPP_C>
  <GPP_D>&lt;a&gt; &amp; &quot;q&quot; &apos;s&apos; &#65;&#x42;</GPP_D>
  <GPP_E/>
  <GPP_F></GPP_F>
  <GPP_A ua=" RO ">last</GPP_A>
  <GPP_G ua="bogus">x</GPP_G>
  <!-- a comment -->
  <?some-pi data?>
  <GPP_H><![CDATA[<raw> & stuff]]></GPP_H>
</flat-profile>"""
    params = parse(body)
    assert params["GPP_A"] == Param("GPP_A", "last", "ro")  # last occurrence wins
    assert params["gpp_a"] == Param("gpp_a", "other case")  # names are case-sensitive
    assert params["GPP_B"].value == "padded value"  # trimmed
    assert params["GPP_C"].value == "line one line two line three"  # newlines -> spaces
    assert params["GPP_D"].value == "<a> & \"q\" 's' AB"
    assert params["GPP_E"].value == ""
    assert params["GPP_F"].value == ""
    assert params["GPP_G"].access is None  # unknown ua ignored
    assert params["GPP_H"].value == "<raw> & stuff"
    assert len(params) == 9


def test_parse_skips_non_parameter_names() -> None:
    body = b'<flat-profile xmlns:x="urn:x"><x:GPP_A>1</x:GPP_A><GPP_B>2</GPP_B></flat-profile>'
    assert parse(body) == {"GPP_B": Param("GPP_B", "2")}


def test_parse_only_reads_flat_profile_children() -> None:
    body = (
        b"<device><other><GPP_A>1</GPP_A></other>"
        b"<flat-profile><GPP_B>2</GPP_B></flat-profile></device>"
    )
    assert parse(body) == {"GPP_B": Param("GPP_B", "2")}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"not xml",
        b"<flat-profile><GPP_A>1</GPP_A>",  # unclosed
        b"<flat-profile><GPP_A>1</GPP_B></flat-profile>",  # mismatched
        b"<flat-profile>&bogus;</flat-profile>",  # undefined entity
        b"<config><GPP_A>1</GPP_A></config>",  # wrong root
        b"<device><GPP_A>1</GPP_A></device>",  # wrapper without flat-profile
        b"<flat-profile/><flat-profile/>",  # two roots
        b"\xff\xfe<\x00a\x00/\x00>\x00",  # UTF-16: the phone is ASCII-only
        b"<flat-profile><A>\xe9</A></flat-profile>",  # not UTF-8
        b'<flat-profile/><?xml version="1.0"?>',  # a declaration that is not at the start
        b"\x1f\x8b\x08\x00",  # gzip must be undone before parsing
    ],
)
def test_parse_rejects(body: bytes) -> None:
    with pytest.raises(CodecError):
        parse(body)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<flat-profile><GPP_A>&lol9;</GPP_A></flat-profile>"""


@pytest.mark.parametrize(
    "body",
    [
        BILLION_LAUGHS,
        b'<!DOCTYPE f [<!ENTITY x SYSTEM "file:///etc/passwd">]><flat-profile><A>&x;</A></flat-profile>',
        b'<!DOCTYPE flat-profile SYSTEM "http://example.invalid/x.dtd"><flat-profile/>',
        b"<!DOCTYPE flat-profile><flat-profile/>",
    ],
)
def test_parse_rejects_dtds(body: bytes) -> None:
    started = time.monotonic()
    with pytest.raises(CodecError, match="DOCTYPE"):
        parse(body)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("bom", [b"", b"\xff\xfe"])
@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-32-le"])
def test_dtd_cannot_hide_in_utf16(bom: bytes, encoding: str) -> None:
    # expat detects UTF-16 by itself, where a byte search for "<!DOCTYPE" would miss it.
    body = BILLION_LAUGHS.decode().encode(encoding)
    with pytest.raises(CodecError):
        parse(bom + body)


def test_doctype_hook_is_a_second_line_of_defence() -> None:
    parser = ET.XMLParser(target=_GuardedTreeBuilder())
    with pytest.raises(CodecError, match="DOCTYPE"):
        parser.feed("<!DOCTYPE a><a/>")
        parser.close()


# --- properties ---------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,20}", fullmatch=True).filter(is_valid_name)
# Printable ASCII plus tab inside; the phone trims the ends, so generated values are trimmed.
VALUES = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\t"))
PARAMS = st.builds(
    Param,
    name=NAMES,
    value=VALUES.map(lambda v: v.strip(" \t")),
    access=st.none() | st.sampled_from(["na", "ro", "rw"]),
)


@given(params=st.lists(PARAMS, max_size=12), device_wrapper=st.booleans())
def test_parse_render_round_trip(params: list[Param], device_wrapper: bool) -> None:
    body = render(params, device_wrapper=device_wrapper)
    assert body.isascii()
    expected = {p.name: p for p in params}  # last occurrence wins
    assert parse(body) == expected


@given(st.lists(PARAMS, max_size=6))
def test_render_is_deterministic_one_line_per_param(params: list[Param]) -> None:
    body = render(params)
    assert body == render(params)
    assert len(body.splitlines()) == 5 + len(params)


@given(name=NAMES, raw=VALUES)
def test_untrimmed_values_come_back_trimmed(name: str, raw: str) -> None:
    assert parse(render([Param(name, raw)]))[name].value == raw.strip(" \t")


@settings(max_examples=300)
@given(
    st.binary(max_size=200)
    | st.text(alphabet="<>/!?&;#x=\"' \n-[]abcdefgilmnoprtuvxyDEFGLPAT_01", max_size=120).map(
        str.encode
    )
    | st.text(max_size=60).map(
        lambda t: b"<flat-profile><A>" + t.encode("utf-8", "surrogatepass") + b"</A></flat-profile>"
    )
)
def test_arbitrary_bytes_raise_only_codec_error(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        params = parse(data)
        assert all(is_valid_name(name) and p.name == name for name, p in params.items())
