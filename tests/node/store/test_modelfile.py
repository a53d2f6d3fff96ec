"""Tests for the Modelfile parser, writer and /api/show parameter formatting."""

from __future__ import annotations

import pytest

from avocado.node.store.modelfile import Modelfile, ModelfileError, format_parameters, parse_modelfile
from avocado.node.templates.builtin import CHATML_TEMPLATE

FULL = '''# A Modelfile with one of everything
from smollm2:135m
Parameter temperature 0.7
PARAMETER stop "<|im_end|>"
PARAMETER stop <|im_start|>
parameter num_ctx 4096
PARAMETER use_mmap false

template """{{ .System }}
{{ .Prompt }}"""
SYSTEM "You are \\"nice\\".\\nReally."
adapter ./lora.gguf
MESSAGE user Hello there
message assistant """Hi!
How can I help?"""
LICENSE """MIT
text"""
'''


def test_full_modelfile() -> None:
    model = parse_modelfile(FULL)
    assert model == Modelfile(
        from_="smollm2:135m",
        parameters={
            "temperature": 0.7,
            "stop": ["<|im_end|>", "<|im_start|>"],
            "num_ctx": 4096,
            "use_mmap": False,
        },
        template="{{ .System }}\n{{ .Prompt }}",
        system='You are "nice".\nReally.',
        adapters=["./lora.gguf"],
        licenses=["MIT\ntext"],
        messages=[
            {"role": "user", "content": "Hello there"},
            {"role": "assistant", "content": "Hi!\nHow can I help?"},
        ],
    )


def test_comments_and_blank_lines() -> None:
    text = (
        "# leading comment\n\n   # indented comment\nFROM base\n\n"
        "# SYSTEM not this\nSYSTEM hi # not a comment\n"
    )
    model = parse_modelfile(text)
    assert model.from_ == "base"
    assert model.system == "hi # not a comment"


def test_case_insensitive_instructions() -> None:
    model = parse_modelfile("fRoM base\nSyStEm  be brief  \nTemplate {{ .Prompt }}\n")
    assert model.from_ == "base"
    assert model.system == "be brief"
    assert model.template == "{{ .Prompt }}"


def test_triple_quotes_keep_text_verbatim() -> None:
    text = (
        'FROM base\nTEMPLATE """\n  {{- if .System }}"{{ .System }}"\\n{{ end }}\n\n"""   \n'
        'SYSTEM """"quoted" start"""\n'
    )
    model = parse_modelfile(text)
    assert model.template == '\n  {{- if .System }}"{{ .System }}"\\n{{ end }}\n\n'
    assert model.system == '"quoted" start'


def test_crlf_line_endings() -> None:
    model = parse_modelfile('FROM base\r\nSYSTEM """a\r\nb"""\r\nPARAMETER top_k 5\r\n')
    assert model.system == "a\nb"
    assert model.parameters == {"top_k": 5}


def test_multiple_stops_accumulate() -> None:
    model = parse_modelfile('FROM base\nPARAMETER stop "<a>"\nPARAMETER stop <b>\nPARAMETER stop """<c>"""\n')
    assert model.parameters["stop"] == ["<a>", "<b>", "<c>"]


def test_last_scalar_parameter_wins() -> None:
    model = parse_modelfile("FROM base\nPARAMETER temperature 0.1\nPARAMETER temperature 0.9\n")
    assert model.parameters == {"temperature": 0.9}


def test_bad_parameter_type() -> None:
    with pytest.raises(ModelfileError, match=r"line 3: .*num_ctx.*integer"):
        parse_modelfile("FROM base\n\nPARAMETER num_ctx lots\n")


def test_out_of_range_parameter() -> None:
    with pytest.raises(ModelfileError, match=r"line 2: .*top_p"):
        parse_modelfile("FROM base\nPARAMETER top_p 7\n")


def test_unknown_parameter() -> None:
    with pytest.raises(ModelfileError, match=r"line 2: unknown option 'flux_capacitor'"):
        parse_modelfile("FROM base\nPARAMETER flux_capacitor 88\n")


def test_unknown_instruction() -> None:
    with pytest.raises(ModelfileError, match=r"line 3: unknown instruction 'PROMPT'"):
        parse_modelfile("FROM base\n# comment\nPROMPT hello\n")


def test_missing_from() -> None:
    with pytest.raises(ModelfileError, match="no FROM line"):
        parse_modelfile("SYSTEM hi\nPARAMETER top_k 3\n")
    with pytest.raises(ModelfileError, match="no FROM line"):
        parse_modelfile("")


@pytest.mark.parametrize("role", ["robot", "User", "SYSTEM"])
def test_bad_message_role(role: str) -> None:
    with pytest.raises(
        ModelfileError, match=r"line 2: message role must be one of system, user, assistant, tool"
    ):
        parse_modelfile(f"FROM base\nMESSAGE {role} hi\n")


def test_tool_message_role_allowed() -> None:
    model = parse_modelfile('FROM base\nMESSAGE tool {"temp": 20}\n')
    assert model.messages == [{"role": "tool", "content": '{"temp": 20}'}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM\n", "line 1: missing argument after 'FROM'"),
        ("FROM   \n", "line 1: missing argument"),
        ('FROM base\nSYSTEM """never closed\n', 'line 2: unterminated """ string'),
        ('FROM base\nSYSTEM "never closed\n', "line 2: unterminated quoted string"),
        ('FROM base\nSYSTEM "a" b\n', "line 2: unexpected text after closing quote"),
        ('FROM base\nSYSTEM """a""" b\n', 'line 2: unterminated """ string'),
        ("FROM base\nPARAMETER\n", "line 2: missing argument after 'PARAMETER'"),
        ("FROM base\nPARAMETER top_k\n", "line 2: missing argument after 'top_k'"),
        ("FROM base\nMESSAGE user\n", "line 2: missing argument after 'user'"),
    ],
)
def test_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(ModelfileError) as info:
        parse_modelfile(text)
    assert message in str(info.value)


def test_to_text() -> None:
    model = Modelfile(
        from_="smollm2:135m",
        parameters={"stop": ["<|im_start|>", "<|im_end|>"], "temperature": 0.5},
        template="{{ .Prompt }}",
        system="Be brief.",
        messages=[{"role": "user", "content": "Hi"}],
        licenses=["MIT"],
    )
    assert model.to_text() == (
        "FROM smollm2:135m\n"
        'TEMPLATE """{{ .Prompt }}"""\n'
        'SYSTEM """Be brief."""\n'
        "PARAMETER stop <|im_start|>\n"
        "PARAMETER stop <|im_end|>\n"
        "PARAMETER temperature 0.5\n"
        'MESSAGE user """Hi"""\n'
        'LICENSE """MIT"""\n'
    )


@pytest.mark.parametrize(
    "model",
    [
        parse_modelfile(FULL),
        Modelfile(from_="base"),
        Modelfile(from_="/path with spaces/model.gguf ", adapters=[" a", 'b"c']),
        Modelfile(
            from_="base",
            template=CHATML_TEMPLATE,
            system='ends with a quote "',
            parameters={
                "stop": [" leading", "trailing ", '"quoted"', "back\\slash", "new\nline", "tab\there", ""],
                "seed": -1,
                "top_p": 0.95,
                "temperature": 1.0,
                "penalize_newline": True,
            },
            messages=[
                {"role": "system", "content": 'contains """ inside'},
                {"role": "user", "content": 'ends with """'},
                {"role": "assistant", "content": ""},
                {"role": "tool", "content": '"""\n'},
            ],
            licenses=["line\r\nbreaks", "\\n is not a newline here"],
        ),
    ],
)
def test_round_trip(model: Modelfile) -> None:
    assert parse_modelfile(model.to_text()) == model


def test_format_parameters() -> None:
    text = format_parameters(
        {
            "temperature": 1.0,
            "stop": ["<|im_start|>", "<|im_end|>"],
            "top_k": 64,
            "top_p": 0.95,
            "use_mmap": False,
        }
    )
    assert text == "\n".join(
        [
            'stop                           "<|im_start|>"',
            'stop                           "<|im_end|>"',
            "temperature                    1",
            "top_k                          64",
            "top_p                          0.95",
            "use_mmap                       false",
        ]
    )
    assert format_parameters({}) == ""
