"""recorder.agi.protocol: the FastAGI environment, responses and quoting, as tables.

The lines are written as res_agi.c (Asterisk 22) sends them: agi_network and
agi_network_script first (launch_netscript), then setup_env's headers, then agi_arg_N.
"""

from __future__ import annotations

import pytest

from recorder.agi import (
    AgiProtocolError,
    AgiResponse,
    parse_env,
    parse_multiline_response,
    parse_response,
    quote,
    starts_multiline,
)
from tests.harness.agi import env_lines

# As the server tests' fake Asterisk sends it, with a caller name holding ": " (only the first
# separates key and value).
ENV = [line if not line.startswith("agi_calleridname:") else "agi_calleridname: Alice: Smith"
       for line in env_lines()]


def with_line(index: int, line: str) -> list[str]:
    lines = list(ENV)
    lines[index] = line
    return lines


def test_env_from_asterisk() -> None:
    req = parse_env(ENV)
    assert req.script == "record"
    assert req.query == {}
    assert req.args == ("inbound", "201")
    assert req.uniqueid == "1700000000.12"
    assert req.channel == "PJSIP/201-00000001"
    assert req.callerid == "+14155550100"
    assert req.calleridname == "Alice: Smith"  # split on the first ": " only
    assert req.context == "from-trunk"
    assert req.extension == "201"
    assert req.dnid == "201"
    assert req.env["agi_accountcode"] == ""  # sent as "agi_accountcode: "
    assert req.env["agi_network"] == "yes"
    with pytest.raises(TypeError):
        req.env["agi_channel"] = "x"  # type: ignore[index]


@pytest.mark.parametrize(
    ("script_line", "script", "query"),
    [
        ("agi_network_script: record", "record", {}),
        ("agi_network_script: /record", "record", {}),
        ("agi_network_script: record?dir=in&to=201", "record", {"dir": "in", "to": "201"}),
        ("agi_network_script: record?to=%2B1415&empty=", "record", {"to": "+1415", "empty": ""}),
        ("agi_network_script: hooks/record?x=1", "hooks/record", {"x": "1"}),
    ],
)
def test_script_and_query(script_line: str, script: str, query: dict[str, str]) -> None:
    req = parse_env(with_line(1, script_line))
    assert (req.script, req.query) == (script, query)


def test_no_args_and_empty_arg() -> None:
    assert parse_env(ENV[:-2]).args == ()
    # AGI(agi://.../record,,201): an empty argument is sent as "agi_arg_1: "
    assert parse_env([*ENV[:-2], "agi_arg_1: ", "agi_arg_2: 201"]).args == ("", "201")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (with_line(3, "agi_channel"), "line 4: not 'key: value': 'agi_channel'"),
        (with_line(3, "agi_channel:"), "line 4: not 'key: value': 'agi_channel:'"),
        (with_line(3, "agi_channel:PJSIP/201"), "line 4: not 'key: value'"),
        (with_line(4, "language: en"), "line 5: not an agi_ header name: 'language'"),
        (with_line(4, "AGI_LANGUAGE: en"), "line 5: not an agi_ header name"),
        (with_line(4, " agi_language: en"), "line 5: not an agi_ header name"),
        (with_line(4, "GET VARIABLE x: y"), "line 5: not an agi_ header name"),
        (with_line(4, "x" * 500), "line 5: not 'key: value': 'xxxxxxxxxx"),
        (with_line(9, "agi_callerid: s3cret"), "line 10: duplicate header 'agi_callerid'"),
        ([ln for ln in ENV if "uniqueid" not in ln], "missing or empty header 'agi_uniqueid'"),
        (with_line(6, "agi_uniqueid: "), "missing or empty header 'agi_uniqueid'"),
        ([line for line in ENV if "agi_channel" not in line], "header 'agi_channel'"),
        (ENV[:1] + ENV[2:], "missing or empty header 'agi_network_script'"),
        (with_line(1, "agi_network_script: ?x=1"), "no hook name in agi_network_script"),
        (with_line(1, "agi_network_script: /"), "no hook name"),
        (with_line(1, "agi_network_script: r?x=1&x=2"), "duplicate query parameter 'x'"),
        ([*ENV[:-2], "agi_arg_2: 201"], "agi_arg_N not numbered 1..1: [2]"),
        ([*ENV[:-2], "agi_arg_0: x"], "line 23: not an agi_arg_N name: 'agi_arg_0'"),
        ([*ENV[:-2], "agi_arg_01: x"], "line 23: not an agi_arg_N name"),
        ([*ENV[:-2], "agi_arg_x: x"], "line 23: not an agi_arg_N name"),
        ([*ENV, *(f"agi_x{i}: 1" for i in range(105))], "too many headers: more than 128"),
    ],
)
def test_bad_env(lines: list[str], message: str) -> None:
    with pytest.raises(AgiProtocolError) as err:
        parse_env(lines)
    assert message in str(err.value)
    assert "s3cret" not in str(err.value)  # a duplicate's value is the caller's data


def test_offending_text_is_truncated() -> None:
    with pytest.raises(AgiProtocolError) as err:
        parse_env(with_line(4, "y" * 10_000))
    assert len(str(err.value)) < 120


def test_max_headers_is_a_parameter() -> None:
    assert parse_env(ENV, max_headers=len(ENV)).script == "record"
    with pytest.raises(AgiProtocolError, match="more than 23"):
        parse_env(ENV, max_headers=len(ENV) - 1)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("200 result=1", (200, "1", None, None)),
        ("200 result=0", (200, "0", None, None)),
        ("200 result=-1", (200, "-1", None, None)),
        ("200 result=1 (201)", (200, "1", "201", None)),
        ("200 result=1 ()", (200, "1", "", None)),  # a variable set to ""
        ("200 result=1 (a (b) c)", (200, "1", "a (b) c", None)),
        ("200 result=1 (x) endpos=5)", (200, "1", "x) endpos=5", None)),  # a value, not endpos
        ("200 result=0 endpos=16000", (200, "0", None, 16000)),
        ("200 result=49 endpos=8000", (200, "49", None, 8000)),
        ("200 result=-1 endpos=0", (200, "-1", None, 0)),
        ("200 result=-1 (hangup) endpos=1234", (200, "-1", "hangup", 1234)),
        ("200 result=0 (timeout)", (200, "0", "timeout", None)),
        ("200 result= (timeout)", (200, "", "timeout", None)),  # GET DATA, nothing pressed
        ("200 result=12*3", (200, "12*3", None, None)),
        ("510 Invalid or unknown command", (510, None, "Invalid or unknown command", None)),
        (
            "511 Command Not Permitted on a dead channel or intercept routine",
            (511, None, "Command Not Permitted on a dead channel or intercept routine", None),
        ),
        (
            "520 Invalid command syntax.  Proper usage not available.",
            (520, None, "Invalid command syntax.  Proper usage not available.", None),
        ),
    ],
)
def test_parse_response(
    line: str, expected: tuple[int, str | None, str | None, int | None]
) -> None:
    response = parse_response(line)
    assert (response.code, response.result, response.data, response.endpos) == expected
    assert response.raw == line


@pytest.mark.parametrize(
    "line",
    [
        "",
        "HANGUP",
        "200",
        "200 ",
        "200 result",
        "200 ok",
        "200 result=1 trailing",
        "200 result=1 (unclosed",
        "20 result=1",
        "abc result=1",
        "520-Invalid command syntax.  Proper usage follows:",
        "agi_channel: PJSIP/201",
    ],
)
def test_garbage_response(line: str) -> None:
    with pytest.raises(AgiProtocolError):
        parse_response(line)


def test_multiline_usage_response() -> None:
    lines = [
        "520-Invalid command syntax.  Proper usage follows:",
        " Usage: STREAM FILE <filename> <escape_digits> [sample offset]",
        "",
        "520 End of proper usage.",
    ]
    assert starts_multiline(lines[0])
    assert not any(starts_multiline(line) for line in lines[1:])
    response = parse_multiline_response(lines)
    assert response == AgiResponse(
        code=520,
        result=None,
        data=" Usage: STREAM FILE <filename> <escape_digits> [sample offset]\n",
        endpos=None,
        raw="\n".join(lines),
    )


@pytest.mark.parametrize(
    "lines",
    [
        [],
        ["520-Invalid"],
        ["520 End of proper usage."],
        ["520-Invalid", "usage", "510 Invalid or unknown command"],
    ],
)
def test_bad_multiline_response(lines: list[str]) -> None:
    with pytest.raises(AgiProtocolError):
        parse_multiline_response(lines)


@pytest.mark.parametrize(
    ("response", "number"),
    [("200 result=49 endpos=1", 49), ("200 result=-1", -1), ("200 result=0", 0)],
)
def test_result_int(response: str, number: int) -> None:
    assert parse_response(response).result_int == number


@pytest.mark.parametrize("response", ["200 result=12*3", "200 result= (timeout)", "510 x"])
def test_result_int_not_a_number(response: str) -> None:
    with pytest.raises(AgiProtocolError, match="result is not a number"):
        _ = parse_response(response).result_int


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("", '""'),
        ("OK", '"OK"'),
        ("two words", '"two words"'),
        ('say "hi"', r'"say \"hi\""'),
        ("C:\\path", r'"C:\\path"'),
        ('\\"', r'"\\\""'),
        ("unknown hook 'x'", "\"unknown hook 'x'\""),
        ("Zoë (cafés)", '"Zoë (cafés)"'),
    ],
)
def test_quote(value: str, quoted: str) -> None:
    assert quote(value) == quoted


@pytest.mark.parametrize(
    "value",
    [
        'ok"\nEXEC System "rm -rf /',  # would be a second command
        "a\rb",
        "a\x00b",
        "tab\there",
        "bell\x07",
        "del\x7f",
        "c1\x85",
    ],
)
def test_quote_rejects_control_characters(value: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        quote(value)


def test_absent_optional_headers_read_as_empty() -> None:
    req = parse_env(
        ["agi_network_script: record", "agi_channel: Local/1@x-0001;1", "agi_uniqueid: 1.2"]
    )
    assert (req.callerid, req.calleridname, req.context, req.extension, req.dnid) == ("",) * 5
    assert req.args == ()
