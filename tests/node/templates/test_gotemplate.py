"""Tests for the Go text/template interpreter.

Expected strings were checked against Go's own text/template (go1.19, plus Go 1.22/1.23 behaviour for
``range`` over an int and ``else with``), except where a test says the behaviour is deliberately
more lenient than Go's.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import pytest

from avocado.node.templates.builtin import CHATML_TEMPLATE, GEMMA3_TEMPLATE
from avocado.node.templates.gotemplate import GoTemplate, TemplateError, format_value

DATA: dict[str, Any] = {
    "A": "a",
    "N": 3,
    "F": 0.5,
    "L": [1, 2, 3],
    "S": ["x", "y"],
    "M": {"b": 2, "a": 1},
    "E": "",
    "Z": 0,
    "T": True,
    "X": {"Y": {"Z": "deep"}},
    "LL": [[1, 2], [3, 4]],
}


def render(source: str, data: Any = None) -> str:
    return GoTemplate(source).render(DATA if data is None else data)


def render_error(source: str, data: Any = None) -> str:
    with pytest.raises(TemplateError) as info:
        render(source, data)
    return str(info.value)


# --- text, trim markers, comments ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("hello {{ .A }} world", "hello a world"),
        ("a  {{- .A -}}  \n b", "aab"),
        ("a  {{- /* c */ -}}  \n b", "ab"),
        ("a {{/* c */}} b", "a  b"),
        ("a\n{{- /* comment\nspanning */ -}}\nb", "ab"),
        ('{{- "x" -}}\n\n  {{- "y" }}   {{- 3 -}}\n {{ -3 }}', "xy3-3"),
        ("{{ if eq .N 3 -}} \n yes \n {{- end }}", "yes"),
        ("x{{- if .E -}} a {{- else -}} b {{- end -}} \n y", "xby"),
        ("{{ .A  -}}  b", "ab"),  # several spaces before the trim marker
        ("{{-3}}", "-3"),  # no space after "{{-": a negative number, not a trim marker
    ],
)
def test_text_trim_and_comments(source: str, expected: str) -> None:
    assert render(source) == expected


def test_trim_marker_needs_a_space() -> None:
    assert "bad number syntax" in render_error("a\n{{-/* no */}}\nb")


# --- values and printing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ .N }} {{ .F }} {{ .L }} {{ .M }} {{ .T }}", "3 0.5 [1 2 3] map[a:1 b:2] true"),
        ("{{ .X.Y.Z }} {{ $.X.Y.Z }}", "deep deep"),
        ("{{ $v := .X }}{{ $v.Y.Z }}{{ with $v.Y }}{{ .Z }}{{ end }}", "deepdeep"),
        ("{{ (.X).Y.Z }} {{ (index .LL 1) }} {{ index .LL 1 0 }}", "deep [3 4] 3"),
        (
            "{{ $ }}",
            "map[A:a E: F:0.5 L:[1 2 3] LL:[[1 2] [3 4]] M:map[a:1 b:2] N:3 S:[x y] T:true "
            "X:map[Y:map[Z:deep]] Z:0]",
        ),
        (
            "{{ 1.0 }} {{ 1e6 }} {{ 123456.0 }} {{ 1234567.0 }} "
            "{{ 0.0001 }} {{ 0.00001 }} {{ -2.5 }} {{ 1e21 }}",
            "1 1e+06 123456 1.234567e+06 0.0001 1e-05 -2.5 1e+21",
        ),
        (
            "{{ 0x1F }} {{ 017 }} {{ 'a' }} {{ 1_000 }} {{ -5 }} {{ +5 }} {{ .5 }} {{ 0b101 }} {{ 0o17 }}",
            "31 15 97 1000 -5 5 0.5 5 15",
        ),
        ("{{ 'x' }} {{ '\\n' }} {{ '\\'' }}", "120 10 39"),
        ('{{ "a\\tb\\n\\"q\\"\\u00e9\\x41" }}|{{ `raw\\n` }}', 'a\tb\n"q"éA|raw\\n'),
        ('{{ "\\101\\x41\\u0041\\U00000041" }}', "AAAA"),
        ("{{ true }} {{ false }} {{ . }}", "true false [1 b <nil> true 2.5 map[k:<nil>]]"),
    ],
)
def test_values(source: str, expected: str) -> None:
    data = [1, "b", None, True, 2.5, {"k": None}] if "{{ . }}" in source else None
    assert render(source, data) == expected


def test_missing_and_none_fields_are_empty_and_false() -> None:
    # Lenient on purpose: Go would print "<no value>" for a missing map key.
    assert render("[{{ .Missing }}][{{ .Missing.Deeper }}][{{ .Nil }}]", {"Nil": None}) == "[][][]"
    assert render("{{ if .Missing }}yes{{ else }}no{{ end }}") == "no"
    assert render('{{ or .Missing "default" }}|{{ and .A .E }}|') == "default||"


def test_attribute_access_on_objects() -> None:
    @dataclass
    class Message:
        Role: str
        Content: str

    data = {"Messages": [Message("user", "hi"), Message("assistant", "yo")]}
    assert (
        render("{{ range .Messages }}{{ .Role }}:{{ .Content }};{{ .Nope }}{{ end }}", data)
        == "user:hi;assistant:yo;"
    )


def test_format_value() -> None:
    assert format_value(0.5) == "0.5"
    assert format_value(1.0) == "1"
    assert format_value(None) == "<nil>"
    assert format_value({"b": [1, None], "a": False}) == "map[a:false b:[1 <nil>]]"
    assert format_value(float("inf")) == "+Inf"


# --- control structures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ if .E }}yes{{ else if .Z }}z{{ else }}no{{ end }}", "no"),
        ("{{ if .E }}e{{ else if .N }}n{{ else }}no{{ end }}", "n"),
        ("{{ if .A }}y{{ end }}{{ if .L }}L{{ end }}{{ if .M }}M{{ end }}{{ if .Z }}Z{{ end }}", "yLM"),
        ('{{ if 0.0 }}a{{ end }}{{ if false }}b{{ end }}{{ if "" }}c{{ end }}{{ if 1 }}d{{ end }}', "d"),
        ("{{ range .L }}[{{ . }}]{{ end }}", "[1][2][3]"),
        ("{{ range $i, $x := .L }}{{ $i }}={{ $x }};{{ end }}", "0=1;1=2;2=3;"),
        ("{{ range $x := .S }}{{ $x }}{{ end }}", "xy"),
        ("{{ range $k, $v := .M }}{{ $k }}={{ $v }};{{ end }}", "a=1;b=2;"),
        ("{{ range .M }}{{ . }}{{ end }}", "12"),
        ("{{ range .Missing }}x{{ else }}empty{{ end }}", "empty"),
        ("{{ range .L }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ . }}{{ end }}", "13"),
        ("{{ range .L }}{{ if eq . 2 }}{{ break }}{{ end }}{{ . }}{{ end }}", "1"),
        (
            '{{ range .L }}{{ range $.S }}{{ if eq . "y" }}{{ break }}{{ end }}{{ . }}{{ end }}|{{ end }}',
            "x|x|x|",
        ),
        ("{{ range $i, $e := .LL }}{{ range $e }}{{ $i }}{{ . }} {{ end }}{{ end }}", "01 02 13 14 "),
        ("{{ range 3 }}{{ . }}{{ end }}", "012"),
        ("{{ with .A }}{{ . }}{{ else }}none{{ end }}{{ with .E }}{{ . }}{{ else }}none{{ end }}", "anone"),
        ("{{ with $x := .A }}{{ $x }}{{ . }}{{ end }}", "aa"),
        ("{{ with .Missing }}x{{ else with .A }}{{ . }}{{ end }}", "a"),
        ("{{ $.A }} {{ with .M }}{{ $.A }}{{ .a }}{{ end }}", "a a1"),
    ],
)
def test_control(source: str, expected: str) -> None:
    assert render(source) == expected


def test_range_over_list_root() -> None:
    assert render("{{ range $i, $e := . }}{{ $i }}{{ $e.X }}{{ end }}", [{"X": 1}, {"X": 2}]) == "0112"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ $x := 1 }}{{ range .L }}{{ $x = . }}{{ end }}{{ $x }}", "3"),
        ("{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}", "21"),
        ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", "2"),
        ("{{ $i := 0 }}{{ range .L }}{{ $i = len (slice $.L $i) }}{{ end }}{{ $i }}", "3"),
        ('{{ $a := "x" }}{{ range $a, $b := .L }}{{ $a }}{{ end }}{{ $a }}', "012x"),
        ("{{ range .L }}{{ $z := . }}{{ $z }}{{ end }}", "123"),
        ("{{ range $i, $x := .L }}{{ if $i }},{{ end }}{{ $x }}{{ end }}", "1,2,3"),
    ],
)
def test_variables_and_scoping(source: str, expected: str) -> None:
    assert render(source) == expected


# --- functions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            '{{ and 1 0 2 }} {{ and 1 2 }} {{ or 0 "" }} {{ or 0 "x" 3 }} {{ not 0 }} {{ not .A }}',
            "0 2  x true false",
        ),
        ("{{ and .E (index .L 99) }}{{ or .A (index .L 99) }}", "a"),  # short-circuit: index never runs
        (
            '{{ eq 1 2 3 1 }} {{ eq .A "a" }} {{ ne 1 2 }} {{ lt 1 2 }} '
            '{{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1 2 }}',
            "true true true true true true false",
        ),
        ("{{ eq .Missing nil }} {{ eq .A nil }} {{ eq 1 1.0 }}", "true false true"),
        ('{{ len .L }} {{ len .A }} {{ len .M }} {{ len "héllo" }} {{ len .Missing }}', "3 1 2 6 0"),
        (
            '{{ index .L 1 }} {{ index .M "a" }} [{{ index .M "zz" }}] {{ index . "A" }} {{ index "abc" 1 }}',
            "2 1 [] a 98",
        ),
        (
            '{{ slice .L 1 }} {{ slice .L 1 2 }} {{ slice .A 0 1 }} {{ slice "hello" 1 3 }} {{ slice .L }}',
            "[2 3] [2] a el [1 2 3]",
        ),
        ("{{ (len .L) }} {{ (index .L 0) }} {{ len (slice .L 1) }} {{ (index .LL 0 | len) }}", "3 1 2 2"),
        ('{{ .A | printf "%s!" }} {{ .L | len }} {{ "x" | printf "%s%s" "y" }}', "a! 3 yx"),
        ('{{ print 1 2 "a" "b" 3 }}|{{ println 1 "a" }}|{{ print }}|{{ print nil }}', "1 2ab3|1 a\n||<nil>"),
        ('{{ html "<a href=\'x\'>&\\"</a>" }}', "&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt;"),
        ('{{ js "a\'b\\"c<d>&=\\n\\\\" }}', "a\\'b\\\"c\\u003Cd\\u003E\\u0026\\u003D\\u000A\\\\"),
        ('{{ urlquery "a b&c=d/é~" }} {{ html 1 2 }}', "a+b%26c%3Dd%2F%C3%A9~ 1 2"),
    ],
)
def test_builtin_functions(source: str, expected: str) -> None:
    assert render(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('{{ printf "%s-%d-%v-%q-%f-%.2f-%%" .A .N .F .A .F .F }}', 'a-3-0.5-"a"-0.500000-0.50-%'),
        (
            '{{ printf "%5d|%-5d|%05d|%x|%X|%o|%b|%c|%t|%5.1f|%e|%g|%10s|%-4s|" '
            '42 42 42 255 255 8 5 65 true 3.14159 1234.5678 0.000012 "hi" "a" }}',
            "   42|42   |00042|ff|FF|10|101|A|true|  3.1|1.234568e+03|1.2e-05|        hi|a   |",
        ),
        (
            '{{ printf "%d %s" "x" 3 }}|{{ printf "%d" }}|{{ printf "x" 1 "s" }}',
            "%!d(string=x) %!s(int=3)|%!d(MISSING)|x%!(EXTRA int=1, string=s)",
        ),
        (
            '{{ printf "%v %v" .L .M }}|{{ printf "%d" .L }}|{{ printf "%q" .S }}',
            '[1 2 3] map[a:1 b:2]|[1 2 3]|["x" "y"]',
        ),
        ('{{ printf "%08.3f|%-8.2f|%+08d|%x" -3.14159 2.5 42 -255 }}', "-003.142|2.50    |+0000042|-ff"),
        ('{{ printf "%.3s|%.0f|%.1e|%5t|%v" "abcdef" 2.5 123456.0 true "x" }}', "abc|2|1.2e+05| true|x"),
        (
            '{{ printf "%.2f %.0f %.1f %.3g %g %g" 2.675 0.5 0.25 1234.5678 1e20 1e21 }}',
            "2.67 0 0.2 1.23e+03 1e+20 1e+21",
        ),
        ('{{ printf "%T %T %T %T %T" 1 1.5 "s" true .L }}', "int float64 string bool []interface {}"),
        ('{{ printf "%x %X % d" "hi" "hi" 5 }}', "6869 6869  5"),
    ],
)
def test_printf(source: str, expected: str) -> None:
    assert render(source) == expected


def test_json_function() -> None:
    data = {
        "V": {"name": "f", "args": {"z": 1, "a": [1.0, 2.5, None, True, "é<&>"]}, "big": 1e21, "tiny": 1e-7}
    }
    assert render("{{ .V | json }}", data) == (
        '{"name":"f","args":{"z":1,"a":[1,2.5,null,true,"é<&>"]},"big":1e+21,"tiny":1e-7}'
    )
    assert render("{{ json .S }} {{ json .A }} {{ json .Missing }}") == '["x","y"] "a" null'


def test_dates() -> None:
    today = datetime.date.today()
    out = render("{{ currentDate }} {{ yesterdayDate }}")
    # Tolerate a run that crosses midnight.
    assert out in {
        f"{d.isoformat()} {(d - datetime.timedelta(days=1)).isoformat()}"
        for d in (today, today + datetime.timedelta(days=1))
    }


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, "string"),
        ({"type": "integer"}, "number"),
        ({"type": "boolean"}, "boolean"),
        ({"type": "array", "items": {"type": "string"}}, "string[]"),
        ({"type": "array"}, "any[]"),
        ({"type": ["string", "null"]}, "string | null"),
        ({"type": "string", "enum": ["celsius", "fahrenheit"]}, '"celsius" | "fahrenheit"'),
        ({"anyOf": [{"type": "number"}, {"type": "string"}]}, "number | string"),
        ({}, "any"),
    ],
)
def test_to_typescript_type(schema: dict[str, Any], expected: str) -> None:
    assert render("{{ toTypeScriptType .P }}", {"P": schema}) == expected


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ foo 1 }}", 'function "foo" not defined'),
        ("{{ if }}{{ end }}", "missing value for if"),
        ("{{ $y }}", 'undefined variable "$y"'),
        ("{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}", 'undefined variable "$y"'),
        ("{{ $y = 1 }}", 'undefined variable "$y"'),
        ("{{ range $i, $c := .S }}{{ end }}{{ $i }}", 'undefined variable "$i"'),
        ("{{ break }}", "{{break}} outside {{range}}"),
        ("{{ range .L }}{{ else }}{{ continue }}{{ end }}", "{{continue}} outside {{range}}"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ else }}", "unexpected {{else}}"),
        ("{{ if 1 }}x", "unexpected EOF"),
        ("{{ if 1 }}{{ else }}{{ else }}{{ end }}", "expected end"),
        ("{{ .A | 3 }}", "non executable command in pipeline stage 2"),
        ('{{ "unterminated }}', "unterminated quoted string"),
        ("a {{/* x */ b", "comment ends before closing delimiter"),
        ("a {{/* x", "unclosed comment"),
        ("{{ .A", "unclosed action"),
        ("{{ (len .L }}", "unexpected"),
        ("{{ .A # }}", "unrecognized character"),
        ('{{ define "x" }}{{ end }}', "not supported"),
        ("line1\n{{ .A }}\n{{ nosuch }}", "line 3"),
    ],
)
def test_parse_errors(source: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        GoTemplate(source)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ index .N 1 }}", "error calling index: can't index item of type int"),
        ("{{ index .L 5 }}", "error calling index: index out of range: 5"),
        ("{{ slice .L 2 1 }}", "error calling slice: invalid slice index: 2 > 1"),
        ("{{ slice .A 0 1 2 }}", "cannot 3-index slice a string"),
        ("{{ len 3 }}", "error calling len: len of type int"),
        ('{{ eq 1 "a" }}', "incompatible types for comparison"),
        ("{{ eq .L .L }}", "non-comparable type"),
        ("{{ lt true false }}", "invalid type for comparison"),
        ("{{ not 1 2 }}", "wrong number of args for not: want 1 got 2"),
        ("{{ and }}", "wrong number of args for and: want at least 1 got 0"),
        ("{{ printf 3 }}", "expected string"),
        ("{{ .A 1 }}", "can't give argument to non-function .A"),
        ("{{ 1 | .A }}", "can't give argument to non-function .A"),
        ("{{ nil }}", "nil is not a command"),
        ("{{ .A.B }}", "can't evaluate field B in type string"),
        ("{{ range .A }}{{ end }}", "range can't iterate over a"),
        ("{{ range $i, $x := 3 }}{{ end }}", "more than one variable"),
        ('{{ json .F | printf "%s" | len | index .L }}', "index out of range: 3"),
        ("\n\n{{ index .L 7 }}", "line 3"),
    ],
)
def test_exec_errors(source: str, message: str) -> None:
    assert message in render_error(source)


def test_json_rejects_nan() -> None:
    assert "unsupported value" in render_error("{{ json .V }}", {"V": float("nan")})


# --- references ----------------------------------------------------------------------------------


def test_references() -> None:
    chatml = GoTemplate(CHATML_TEMPLATE)
    for name in ("Tools", "Messages", "System", "Prompt", "Response", "ToolCalls", "tools"):
        assert chatml.references(name), name
    assert not chatml.references("Suffix")
    gemma = GoTemplate(GEMMA3_TEMPLATE)
    assert gemma.references("Messages")
    assert gemma.references("Content")
    assert not gemma.references("Tools")
    assert not gemma.references("System")
    assert GoTemplate("{{ with (index $.Suffix 0).Deep }}{{ end }}").references("Deep")
    assert GoTemplate("{{ $.Suffix }}").references("Suffix")
    assert GoTemplate("{{ $x := .A }}").source == "{{ $x := .A }}"


# --- the bundled Ollama templates ----------------------------------------------------------------


def msg(role: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"Role": role, "Content": content, **extra}


TOOLS = [
    {
        "Type": "function",
        "Function": {
            "name": "get_weather",
            "description": "Get the weather",
            "parameters": {
                "type": "object",
                "required": ["city"],
                "properties": {"city": {"type": "string"}},
            },
        },
    }
]
TOOL_CALLS = [{"Function": {"Name": "get_weather", "Arguments": {"city": "Paris"}}}]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"System": "S", "Messages": [msg("system", "S"), msg("user", "Hi")]},
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        ),
        (
            {"Messages": [msg("user", "Hi"), msg("assistant", "Hello!"), msg("user", "How are you?")]},
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
            "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n",
        ),
        (
            # a trailing assistant message is continued, not closed
            {"Messages": [msg("user", "Hi"), msg("assistant", "Hel")]},
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHel",
        ),
        (
            {"System": "S", "Prompt": "Hello"},
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
        ),
        (
            {"Prompt": "Hello", "Response": "Answer"},
            "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nAnswer<|im_end|>",
        ),
    ],
)
def test_chatml_template(data: dict[str, Any], expected: str) -> None:
    assert GoTemplate(CHATML_TEMPLATE).render(data) == expected


def test_chatml_template_with_tools() -> None:
    data = {
        "System": "S",
        "Tools": TOOLS,
        "Messages": [
            msg("user", "Weather?"),
            msg("assistant", "", ToolCalls=TOOL_CALLS),
            msg("tool", "sunny"),
        ],
    }
    expected = (
        "<|im_start|>system\nS\n\n# Tools\n\n"
        "You may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
        '{"type": "function", "function": {"name":"get_weather","description":"Get the weather",'
        '"parameters":{"type":"object","required":["city"],"properties":{"city":{"type":"string"}}}}}\n'
        "</tools>\n\n"
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\nWeather?<|im_end|>\n"
        "<|im_start|>assistant\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city":"Paris"}}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert GoTemplate(CHATML_TEMPLATE).render(data) == expected


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([msg("user", "Hi")], "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"),
        (
            [msg("system", "Be brief."), msg("user", "Hi"), msg("assistant", "Hello!"), msg("user", "Bye")],
            "<start_of_turn>user\nBe brief.<end_of_turn>\n<start_of_turn>user\nHi<end_of_turn>\n"
            "<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n"
            "<start_of_turn>model\n",
        ),
        (
            [msg("user", "Hi"), msg("assistant", "Hel")],
            "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHel",
        ),
        ([], ""),
    ],
)
def test_gemma3_template(messages: list[dict[str, Any]], expected: str) -> None:
    assert GoTemplate(GEMMA3_TEMPLATE).render({"Messages": messages}) == expected
