"""A Go ``text/template`` interpreter for the subset that Ollama model templates use.

Ollama model templates (a Modelfile's ``TEMPLATE``) are Go templates, so the node renders them
with Go's rules: trim markers, comments, pipelines, ``if``/``range``/``with`` with their ``else``
forms, ``break``/``continue``, variables with Go scoping, Go truthiness and Go's ``%v`` printing,
plus the builtin functions and Ollama's extras (``json``, ``currentDate``, ``yesterdayDate``,
``toTypeScriptType``).

Data is plain Python: ``.Foo`` looks up key ``"Foo"`` in a mapping, or attribute ``Foo`` on any
other object. Deliberate differences from Go, all towards leniency:

- a missing field (or a field of a missing value) is ``None``, prints as the empty string and is
  false, where Go would print ``<no value>`` or fail;
- ``None`` acts as an empty collection for ``len``, ``range`` and ``slice``;
- ``eq``/``lt``/... compare an int with a float numerically instead of failing.

Strings follow Go's byte semantics where Go's do: ``len``, ``index`` and ``slice`` count UTF-8 bytes.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NoReturn
from urllib.parse import quote_plus

__all__ = ["GoTemplate", "TemplateError", "format_value"]


class TemplateError(ValueError):
    """A template failed to parse or to execute; the message names the line."""


# --------------------------------------------------------------------------------------------------
# Lexer
# --------------------------------------------------------------------------------------------------

_SPACE = " \t\r\n"
_KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "break", "continue", "define", "template", "block"}
)
_TERMINATORS = frozenset(_SPACE + ".,|:()")
_SIMPLE_TOKENS = {"|": "pipe", "(": "lparen", ")": "rparen", ",": "comma", "=": "assign"}
_NUMBER_RE = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+"
    r"|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?)"
)
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # text, left, right, field, var, ident, keyword, string, char, number, bool, nil, dot, ...
    text: str  # the source text (for a field, the name without the dot)
    line: int
    space: bool = False  # preceded by white space inside an action
    literal: Any = None  # decoded value of a string, char or number token


def _unquote(body: str, quote: str) -> str:
    """Decode the escapes of a Go interpreted string or rune literal (without its quotes)."""
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError("trailing backslash")
        esc = body[i + 1]
        i += 2
        if esc in _ESCAPES:
            out += _ESCAPES[esc].encode()
        elif esc == quote:
            out += quote.encode()
        elif esc in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[esc]
            code = int(body[i : i + size], 16) if len(body[i : i + size]) == size else -1
            if code < 0 or code > 0x10FFFF:
                raise ValueError(f"invalid escape \\{esc}")
            out += bytes([code]) if esc == "x" else chr(code).encode("utf-8", "surrogatepass")
            i += size
        elif esc in "01234567":
            digits = body[i - 1 : i + 2]
            if len(digits) != 3 or any(d not in "01234567" for d in digits) or int(digits, 8) > 255:
                raise ValueError("invalid octal escape")
            out.append(int(digits, 8))
            i += 2
        else:
            raise ValueError(f"unknown escape sequence \\{esc}")
    return out.decode("utf-8", "replace")


def _parse_number(text: str) -> int | float:
    """Convert a Go number literal: ints stay ints, anything with a point or exponent is a float."""
    clean = text.replace("_", "")
    sign = -1 if clean.startswith("-") else 1
    body = clean.lstrip("+-")
    if body[:2].lower() in ("0x", "0b", "0o"):
        return sign * int(body, 0)
    if "." in body or "e" in body.lower():
        return sign * float(body)
    if len(body) > 1 and body[0] == "0":
        return sign * int(body, 8)  # Go's legacy octal
    return sign * int(body)


class _Lexer:
    """Split template source into text and action tokens, applying trim markers and comments."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.pos = 0
        self.tokens: list[_Token] = []
        self._newlines = [i for i, ch in enumerate(src) if ch == "\n"]

    def line_at(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    def error(self, msg: str, pos: int) -> NoReturn:
        raise TemplateError(f"line {self.line_at(pos)}: {msg}")

    def emit(self, kind: str, text: str, pos: int, space: bool = False, literal: Any = None) -> None:
        self.tokens.append(_Token(kind, text, self.line_at(pos), space, literal))

    def run(self) -> list[_Token]:
        src = self.src
        while True:
            start = self.pos
            left = src.find("{{", start)
            if left < 0:
                if start < len(src):
                    self.emit("text", src[start:], start)
                self.emit("eof", "", len(src))
                return self.tokens
            inner = left + 2
            text = src[start:left]
            if src.startswith("-", inner) and inner + 1 < len(src) and src[inner + 1] in _SPACE:
                text = text.rstrip(_SPACE)
                inner += 2
            if text:
                self.emit("text", text, start)
            self.pos = inner
            if src.startswith("/*", inner):
                self._comment()
            else:
                self.emit("left", "{{", left)
                self._action()

    def _right_delim(self, pos: int) -> tuple[int, bool] | None:
        """If a closing delimiter starts at ``pos``, return where it ends and whether it trims."""
        src = self.src
        if pos < len(src) and src[pos] in _SPACE and src.startswith("-}}", pos + 1):
            return pos + 4, True
        if src.startswith("}}", pos):
            return pos + 2, False
        return None

    def _close(self, end: int, trim: bool) -> None:
        if trim:
            while end < len(self.src) and self.src[end] in _SPACE:
                end += 1
        self.pos = end

    def _comment(self) -> None:
        start = self.pos
        close = self.src.find("*/", start + 2)
        if close < 0:
            self.error("unclosed comment", start)
        delim = self._right_delim(close + 2)
        if delim is None:
            self.error("comment ends before closing delimiter", close)
        self._close(*delim)

    def _action(self) -> None:
        space = False
        while True:
            pos = self.pos
            delim = self._right_delim(pos)
            if delim is not None:
                self.emit("right", "}}", pos, space)
                self._close(*delim)
                return
            if pos >= len(self.src):
                self.error("unclosed action", pos)
            if self.src[pos] in _SPACE:
                self.pos += 1
                space = True
                continue
            self._token(pos, space)
            space = False

    def _word_end(self, pos: int) -> int:
        src = self.src
        while pos < len(src) and (src[pos].isalnum() or src[pos] == "_"):
            pos += 1
        return pos

    def _check_terminator(self, pos: int) -> None:
        if pos < len(self.src) and self.src[pos] not in _TERMINATORS and not self.src.startswith("}}", pos):
            self.error(f"bad character {self.src[pos]!r}", pos)

    def _token(self, pos: int, space: bool) -> None:
        src = self.src
        ch = src[pos]
        nxt = src[pos + 1] if pos + 1 < len(src) else ""
        if ch in _SIMPLE_TOKENS:
            self.emit(_SIMPLE_TOKENS[ch], ch, pos, space)
            self.pos = pos + 1
        elif ch == ":":
            if nxt != "=":
                self.error("expected :=", pos)
            self.emit("declare", ":=", pos, space)
            self.pos = pos + 2
        elif ch in "\"'`":
            self._quoted(pos, space)
        elif ch == "$" or (ch == "." and not nxt.isdigit()):
            self._field_or_variable(pos, space)
        elif ch.isdigit() or ch in "+-.":
            self._number(pos, space)
        elif ch.isalpha() or ch == "_":
            end = self._word_end(pos)
            self._check_terminator(end)
            word = src[pos:end]
            kind = "keyword" if word in _KEYWORDS else "ident"
            if word in ("true", "false"):
                kind = "bool"
            elif word == "nil":
                kind = "nil"
            self.emit(kind, word, pos, space)
            self.pos = end
        else:
            self.error(f"unrecognized character in action: {ch!r}", pos)

    def _field_or_variable(self, pos: int, space: bool) -> None:
        end = self._word_end(pos + 1)
        self._check_terminator(end)
        word = self.src[pos:end]
        if word == ".":
            self.emit("dot", ".", pos, space)
        elif word.startswith("."):
            self.emit("field", word[1:], pos, space)
        else:
            self.emit("var", word, pos, space)
        self.pos = end

    def _number(self, pos: int, space: bool) -> None:
        match = _NUMBER_RE.match(self.src, pos)
        end = match.end() if match else pos
        if end == pos or (end < len(self.src) and (self.src[end].isalnum() or self.src[end] == "_")):
            self.error(f"bad number syntax: {self.src[pos : max(self._word_end(end), end + 1)]!r}", pos)
        text = self.src[pos:end]
        try:
            value = _parse_number(text)
        except ValueError:
            self.error(f"bad number syntax: {text!r}", pos)
        self.emit("number", text, pos, space, value)
        self.pos = end

    def _quoted(self, pos: int, space: bool) -> None:
        src = self.src
        quote = src[pos]
        if quote == "`":
            end = src.find("`", pos + 1)
            if end < 0:
                self.error("unterminated raw quoted string", pos)
            self.emit("string", src[pos : end + 1], pos, space, src[pos + 1 : end].replace("\r", ""))
            self.pos = end + 1
            return
        i = pos + 1
        while i < len(src) and src[i] != quote and src[i] != "\n":
            i += 2 if src[i] == "\\" else 1
        if i >= len(src) or src[i] != quote:
            what = "quoted string" if quote == '"' else "character constant"
            self.error(f"unterminated {what}", pos)
        text = src[pos : i + 1]
        try:
            value = _unquote(text[1:-1], quote)
        except ValueError as exc:
            self.error(f"invalid literal {text}: {exc}", pos)
        if quote == "'":
            if len(value) != 1:
                self.error(f"malformed character constant: {text}", pos)
            self.emit("number", text, pos, space, ord(value))
        else:
            self.emit("string", text, pos, space, value)
        self.pos = i + 1


# --------------------------------------------------------------------------------------------------
# Syntax tree
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Dot:
    """``.``: the current value."""


@dataclass(slots=True)
class _Nil:
    """``nil``."""


@dataclass(slots=True)
class _Literal:
    value: Any


@dataclass(slots=True)
class _Field:
    names: tuple[str, ...]  # .A.B, relative to dot


@dataclass(slots=True)
class _Variable:
    name: str
    names: tuple[str, ...] = ()  # $x.A.B


@dataclass(slots=True)
class _Identifier:
    name: str  # a function


@dataclass(slots=True)
class _Chain:
    node: _Expr  # (pipeline).A.B
    names: tuple[str, ...]


@dataclass(slots=True)
class _Command:
    args: list[_Expr]
    line: int


@dataclass(slots=True)
class _Pipeline:
    decl: list[str]
    is_assign: bool
    cmds: list[_Command]
    line: int


_Expr = _Dot | _Nil | _Literal | _Field | _Variable | _Identifier | _Chain | _Pipeline


@dataclass(slots=True)
class _Text:
    text: str


@dataclass(slots=True)
class _Action:
    pipe: _Pipeline


@dataclass(slots=True)
class _Branch:
    kind: str  # if, with, range
    pipe: _Pipeline
    body: list[_Node]
    else_body: list[_Node] | None
    line: int


@dataclass(slots=True)
class _Break:
    line: int


@dataclass(slots=True)
class _Continue:
    line: int


_Node = _Text | _Action | _Branch | _Break | _Continue


# --------------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------------

_OPERAND_START = frozenset({"bool", "dot", "field", "ident", "number", "nil", "string", "var", "lparen"})


def _describe(tok: _Token) -> str:
    if tok.kind == "eof":
        return "EOF"
    if tok.kind == "field":
        return f'".{tok.text}"'
    return json.dumps(tok.text)


class _Parser:
    """Recursive-descent parser over the lexer's tokens, checking variables and functions as Go does."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.toks = tokens
        self.i = 0
        self.vars = ["$"]
        self.range_depth = 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def next(self) -> _Token:
        tok = self.peek()
        self.i = min(self.i + 1, len(self.toks) - 1)
        return tok

    def error(self, msg: str, tok: _Token) -> NoReturn:
        raise TemplateError(f"line {tok.line}: {msg}")

    def unexpected(self, tok: _Token, context: str) -> NoReturn:
        self.error(f"unexpected {_describe(tok)} in {context}", tok)

    def expect(self, kind: str, context: str) -> _Token:
        tok = self.next()
        if tok.kind != kind:
            self.unexpected(tok, context)
        return tok

    def parse(self) -> list[_Node]:
        nodes, stop = self.item_list()
        if stop is not None:
            self.error(f"unexpected {{{{{stop.text}}}}}", stop)
        return nodes

    def item_list(self) -> tuple[list[_Node], _Token | None]:
        """Parse nodes up to EOF (returns None) or an ``{{end}}``/``{{else`` (returns that keyword)."""
        nodes: list[_Node] = []
        while True:
            tok = self.next()
            if tok.kind == "eof":
                return nodes, None
            if tok.kind == "text":
                nodes.append(_Text(tok.text))
                continue
            word = self.peek()
            if word.kind != "keyword":
                nodes.append(_Action(self.pipeline("command", "right")))
                continue
            self.next()
            if word.text == "end":
                self.expect("right", "end")
                return nodes, word
            if word.text == "else":
                return nodes, word
            nodes.append(self.keyword_action(word))

    def keyword_action(self, word: _Token) -> _Node:
        if word.text in ("if", "with", "range"):
            return self.control(word.text, word.line)
        if word.text in ("break", "continue"):
            self.expect("right", word.text)
            if self.range_depth == 0:
                self.error(f"{{{{{word.text}}}}} outside {{{{range}}}}", word)
            return _Break(word.line) if word.text == "break" else _Continue(word.line)
        self.error(f"{{{{{word.text}}}}} is not supported", word)

    def control(self, kind: str, line: int) -> _Branch:
        saved = len(self.vars)
        pipe = self.pipeline(kind, "right")
        self.range_depth += kind == "range"
        body, stop = self.item_list()
        self.range_depth -= kind == "range"
        if stop is None:
            self.error("unexpected EOF", self.peek())
        else_body: list[_Node] | None = None
        if stop.text == "else":
            nxt = self.peek()
            if kind in ("if", "with") and nxt.kind == "keyword" and nxt.text == kind:
                self.next()  # "else if" / "else with": a nested control that shares our {{end}}
                else_body = [self.control(kind, nxt.line)]
            else:
                self.expect("right", "else")
                else_body, stop = self.item_list()
                if stop is None:
                    self.error("unexpected EOF", self.peek())
                if stop.text != "end":
                    self.error("expected end; found {{else}}", stop)
        del self.vars[saved:]
        return _Branch(kind, pipe, body, else_body, line)

    def declarations(self, context: str) -> tuple[list[str], bool]:
        """Parse ``$x :=``, ``$x =`` or (in range) ``$i, $x :=`` at the start of a pipeline."""
        decl: list[str] = []
        while self.peek().kind == "var":
            var, after = self.peek(), self.peek(1)
            if after.kind in ("declare", "assign"):
                self.i += 2
                if after.kind == "assign" and var.text not in self.vars:
                    self.error(f"undefined variable {json.dumps(var.text)}", var)
                decl.append(var.text)
                self.vars.append(var.text)
                return decl, after.kind == "assign"
            if after.kind != "comma":
                break
            if context != "range" or decl:
                self.error(f"too many declarations in {context}", after)
            self.i += 2
            decl.append(var.text)
            self.vars.append(var.text)
            if self.peek().kind != "var" or self.peek(1).kind not in ("declare", "assign"):
                self.error("range can only initialize variables", self.peek())
        return decl, False

    def pipeline(self, context: str, end: str) -> _Pipeline:
        line = self.peek().line
        decl, is_assign = self.declarations(context)
        cmds: list[_Command] = []
        while True:
            tok = self.peek()
            if tok.kind == end:
                self.next()
                self.check_pipeline(cmds, context, tok)
                return _Pipeline(decl, is_assign, cmds, line)
            if tok.kind not in _OPERAND_START:
                self.unexpected(tok, context)
            cmds.append(self.command())

    def check_pipeline(self, cmds: list[_Command], context: str, tok: _Token) -> None:
        if not cmds:
            self.error(f"missing value for {context}", tok)
        for stage, cmd in enumerate(cmds[1:], start=2):
            if isinstance(cmd.args[0], (_Literal, _Dot, _Nil)):
                self.error(f"non executable command in pipeline stage {stage}", tok)

    def command(self) -> _Command:
        line = self.peek().line
        args: list[_Expr] = []
        while True:
            operand = self.operand()
            if operand is not None:
                args.append(operand)
            tok = self.peek()
            if tok.kind in ("right", "rparen"):
                break
            if tok.kind == "pipe":
                self.next()
                if self.peek().kind not in _OPERAND_START:
                    self.unexpected(self.peek(), "command")
                break
            if operand is None or not tok.space:
                self.unexpected(tok, "operand")
        if not args:
            self.error("empty command", self.peek())
        return _Command(args, line)

    def operand(self) -> _Expr | None:
        node = self.term()
        if node is None:
            return None
        names: list[str] = []
        while self.peek().kind == "field" and not self.peek().space:
            names.append(self.next().text)
        if not names:
            return node
        if isinstance(node, _Field):
            return _Field(node.names + tuple(names))
        if isinstance(node, _Variable):
            return _Variable(node.name, node.names + tuple(names))
        if isinstance(node, (_Literal, _Nil, _Dot)):
            self.error(f"unexpected . after term {names[0]!r}", self.peek())
        return _Chain(node, tuple(names))

    def term(self) -> _Expr | None:
        tok = self.peek()
        if tok.kind not in _OPERAND_START:
            return None
        self.next()
        if tok.kind == "ident":
            if tok.text not in _FUNCS:
                self.error(f"function {json.dumps(tok.text)} not defined", tok)
            return _Identifier(tok.text)
        if tok.kind == "var":
            if tok.text not in self.vars:
                self.error(f"undefined variable {json.dumps(tok.text)}", tok)
            return _Variable(tok.text)
        if tok.kind == "lparen":
            return self.pipeline("parenthesized pipeline", "rparen")
        if tok.kind == "dot":
            return _Dot()
        if tok.kind == "nil":
            return _Nil()
        if tok.kind == "field":
            return _Field((tok.text,))
        if tok.kind == "bool":
            return _Literal(tok.text == "true")
        return _Literal(tok.literal)  # number, char or string


# --------------------------------------------------------------------------------------------------
# Values: Go truthiness, type names and fmt's %v
# --------------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _truth(value: Any) -> bool:
    """Go's notion of "non-empty": false, 0, nil and empty strings or collections are false."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, Sized):
        return len(value) > 0
    return True


def _go_type(value: Any) -> str:
    """The Go type name fmt would show for a value (as in ``%!d(string=x)``)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    return type(value).__name__


def _sorted_keys(mapping: Mapping[Any, Any]) -> list[Any]:
    try:
        return sorted(mapping)
    except TypeError:
        return list(mapping)


def _shortest_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of ``abs(value)`` and the decimal point position.

    ``abs(value) == 0.<digits> * 10**point``; zero gives ``("0", 1)``.
    """
    if value == 0:
        return "0", 1
    _sign_bit, digit_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    return stripped.rstrip("0") or "0", point


def _fixed_from_digits(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * -point + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def _exp_from_digits(digits: str, point: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exp = point - 1 if digits != "0" else 0
    return f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _go_float(value: float) -> str:
    """Format a float as Go's ``%v`` does (strconv 'g' with the shortest precision)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    digits, point = _shortest_digits(value)
    exp = point - 1
    if digits != "0" and (exp < -4 or exp >= 6):
        return sign + _exp_from_digits(digits, point)
    return sign + _fixed_from_digits(digits, point)


def format_value(value: Any) -> str:
    """Format a value as Go's ``fmt`` ``%v`` does: ``true``, ``0.5``, ``1``, ``[a b]``, ``map[k:v]``."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, (str, int)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = (f"{format_value(k)}:{format_value(value[k])}" for k in _sorted_keys(value))
        return "map[" + " ".join(items) + "]"
    return str(value)


def _go_quote(text: str, quote: str = '"', ascii_only: bool = False) -> str:
    """Quote a string as Go's strconv.Quote (or QuoteToASCII) does."""
    specials = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    out = [quote]
    for ch in text:
        code = ord(ch)
        if ch in (quote, "\\"):
            out.append("\\" + ch)
        elif ch.isprintable() and (code < 0x80 or not ascii_only):
            out.append(ch)
        elif ch in specials:
            out.append(specials[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append(quote)
    return "".join(out)


# --------------------------------------------------------------------------------------------------
# printf
# --------------------------------------------------------------------------------------------------

_PRINTF_RE = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d*))?(.?)", re.S)


@dataclass(frozen=True, slots=True)
class _Spec:
    flags: str
    width: int | None
    prec: int | None


def _pad(text: str, spec: _Spec) -> str:
    if spec.width is None or len(text) >= spec.width:
        return text
    if "-" in spec.flags:
        return text.ljust(spec.width)
    return text.rjust(spec.width, "0" if "0" in spec.flags else " ")


def _pad_number(sign: str, body: str, spec: _Spec, zero_ok: bool = True) -> str:
    """Pad a number, putting zero padding between the sign and the digits as Go does."""
    if zero_ok and "0" in spec.flags and "-" not in spec.flags and spec.width is not None:
        return sign + body.rjust(spec.width - len(sign), "0")
    return _pad(sign + body, _Spec(spec.flags.replace("0", ""), spec.width, spec.prec))


def _sign(negative: bool, spec: _Spec) -> str:
    if negative:
        return "-"
    return "+" if "+" in spec.flags else " " if " " in spec.flags else ""


def _bad_verb(value: Any, verb: str) -> str:
    if value is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({_go_type(value)}={format_value(value)})"


def _rune(value: int) -> str:
    """The character for a code point, or U+FFFD for an invalid one, as Go does."""
    return chr(value) if 0 <= value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF else "\ufffd"


def _format_int(value: int, verb: str, spec: _Spec) -> str:
    if verb == "c":
        return _pad(_rune(value), spec)
    if verb == "q":
        return _pad(_go_quote(_rune(value), "'", ascii_only="+" in spec.flags), spec)
    if verb == "U":
        return _pad(f"U+{value:04X}", spec)
    if spec.prec == 0 and value == 0:  # Go prints nothing, not even a sign, only padding
        return _pad("", _Spec(spec.flags.replace("0", ""), spec.width, spec.prec))
    code = {"d": "d", "v": "d", "b": "b", "o": "o", "x": "x", "X": "X"}[verb]
    digits = format(abs(value), code)
    if spec.prec is not None:
        digits = digits.zfill(spec.prec)
    if "#" in spec.flags:
        octal = "" if digits.startswith("0") else "0"
        digits = {"x": "0x", "X": "0X", "b": "0b", "o": octal}.get(verb, "") + digits
    return _pad_number(_sign(value < 0, spec), digits, spec, zero_ok=spec.prec is None)


def _format_float(value: float, verb: str, spec: _Spec) -> str:
    if math.isnan(value) or math.isinf(value):
        text = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
        if text == "NaN" and ("+" in spec.flags or " " in spec.flags):
            text = ("+" if "+" in spec.flags else " ") + text
        elif text == "+Inf" and " " in spec.flags and "+" not in spec.flags:
            text = " Inf"
        return _pad(text, _Spec(spec.flags.replace("0", ""), spec.width, spec.prec))
    negative = math.copysign(1.0, value) < 0
    magnitude = abs(value)
    alt = "#" if "#" in spec.flags else ""
    prec = 6 if spec.prec is None else spec.prec
    if verb in "vgG" and spec.prec is None and not alt:
        body = _go_float(magnitude)
        body = body.upper() if verb == "G" else body
    elif verb in "vgG":
        body = format(magnitude, f"{alt}.{prec}{'G' if verb == 'G' else 'g'}")
    else:
        body = format(magnitude, f"{alt}.{prec}{'f' if verb == 'F' else verb}")
    return _pad_number(_sign(negative, spec), body, spec)


def _can_backquote(text: str) -> bool:
    return not any(ch in "`\ufeff\x7f" or (ord(ch) < 0x20 and ch != "\t") for ch in text)


def _format_hex(data: bytes, verb: str, spec: _Spec) -> str:
    """%x / %X of a string: `` `` puts spaces between bytes, ``#`` adds 0x prefixes."""
    prefix = ("0x" if verb == "x" else "0X") if "#" in spec.flags else ""
    chunks = [f"{b:02x}" if verb == "x" else f"{b:02X}" for b in data]
    if " " in spec.flags:
        return " ".join(prefix + c for c in chunks)
    return prefix + "".join(chunks) if chunks else ""


def _format_str(value: str, verb: str, spec: _Spec) -> str:
    if verb in "xX":
        data = value.encode()
        return _pad(_format_hex(data if spec.prec is None else data[: spec.prec], verb, spec), spec)
    text = value if spec.prec is None else value[: spec.prec]
    if verb == "q" and "#" in spec.flags and _can_backquote(text):
        text = f"`{text}`"
    elif verb == "q":
        text = _go_quote(text, ascii_only="+" in spec.flags)
    return _pad(text, spec)


def _format_arg(value: Any, verb: str, spec: _Spec) -> str:
    """Format one printf argument; collections apply the verb to each element, as Go does."""
    if verb == "T":
        return _pad(_go_type(value), spec)
    if verb == "v" and ("+" in spec.flags or "#" in spec.flags):
        # %+v and %#v are Go's struct-field and Go-syntax forms; for our values only %#v of a
        # string differs from %v (it is quoted).
        if "#" in spec.flags and isinstance(value, str):
            return _pad(_go_quote(value if spec.prec is None else value[: spec.prec]), spec)
        spec = _Spec(spec.flags.replace("+", "").replace("#", ""), spec.width, spec.prec)
    if value is None:
        return _pad("<nil>", spec) if verb == "v" else _bad_verb(value, verb)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_format_arg(v, verb, spec) for v in value) + "]"
    if isinstance(value, Mapping):
        pairs = (
            f"{_format_arg(k, verb, spec)}:{_format_arg(value[k], verb, spec)}" for k in _sorted_keys(value)
        )
        return "map[" + " ".join(pairs) + "]"
    if isinstance(value, bool):
        return _pad("true" if value else "false", spec) if verb in "tv" else _bad_verb(value, verb)
    if isinstance(value, int):
        return _format_int(value, verb, spec) if verb in "bcdoqxXUv" else _bad_verb(value, verb)
    if isinstance(value, float):
        return _format_float(value, verb, spec) if verb in "eEfFgGv" else _bad_verb(value, verb)
    if isinstance(value, str):
        return _format_str(value, verb, spec) if verb in "svqxX" else _bad_verb(value, verb)
    return _pad(str(value), spec) if verb in "sv" else _bad_verb(value, verb)


def _sprintf(fmt: str, args: Sequence[Any]) -> str:
    """Go's fmt.Sprintf for the common verbs, flags, width and precision."""
    out: list[str] = []
    used = 0
    pos = 0
    while pos < len(fmt):
        percent = fmt.find("%", pos)
        if percent < 0:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos:percent])
        match = _PRINTF_RE.match(fmt, percent)
        assert match is not None
        flags, width, prec, verb = match.groups()
        pos = match.end()
        if not verb:
            out.append("%!(NOVERB)")
        elif verb == "%":
            out.append("%")
        elif used >= len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            spec = _Spec(flags, int(width) if width else None, int(prec or 0) if prec is not None else None)
            out.append(_format_arg(args[used], verb, spec))
            used += 1
    if used < len(args):
        extra = ", ".join("<nil>" if a is None else f"{_go_type(a)}={format_value(a)}" for a in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


# --------------------------------------------------------------------------------------------------
# Builtin functions
# --------------------------------------------------------------------------------------------------


class _FuncError(Exception):
    """A builtin function rejected its arguments; the executor adds the line and function name."""


def _sprint(*args: Any) -> str:
    """Go's fmt.Sprint: spaces between operands when neither side is a string."""
    out: list[str] = []
    prev_string = False
    for i, arg in enumerate(args):
        is_string = isinstance(arg, str)
        if i > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(format_value(arg))
        prev_string = is_string
    return "".join(out)


def _sprintln(*args: Any) -> str:
    return " ".join(format_value(a) for a in args) + "\n"


def _printf(fmt: Any, *args: Any) -> str:
    if not isinstance(fmt, str):
        raise _FuncError(f"wrong type for value; expected string; got {_go_type(fmt)}")
    return _sprintf(fmt, args)


def _text_arg(args: Sequence[Any]) -> str:
    """The single string argument, or fmt.Sprint of all of them (Go's evalArgs)."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return _sprint(*args)


_HTML_ESCAPES = str.maketrans(
    {"&": "&amp;", "'": "&#39;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "\0": "\ufffd"}
)
_JS_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "<": "\\u003C",
    ">": "\\u003E",
    "&": "\\u0026",
    "=": "\\u003D",
}


def _html(*args: Any) -> str:
    return _text_arg(args).translate(_HTML_ESCAPES)


def _js_char(ch: str) -> str:
    if ch in _JS_ESCAPES:
        return _JS_ESCAPES[ch]
    if ord(ch) < 0x20:
        return f"\\u00{ord(ch):02X}"
    if ord(ch) >= 0x80 and not ch.isprintable():
        return f"\\u{ord(ch):04X}"
    return ch


def _js(*args: Any) -> str:
    return "".join(_js_char(ch) for ch in _text_arg(args))


def _urlquery(*args: Any) -> str:
    return quote_plus(_text_arg(args), safe="")


def _not(value: Any) -> bool:
    return not _truth(value)


def _len(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, Sized):
        return len(value)
    raise _FuncError(f"len of type {_go_type(value)}")


def _index_arg(index: Any, size: int, for_index: bool) -> int:
    if index is None:
        raise _FuncError("cannot index slice/array with nil")
    if not _is_int(index):
        raise _FuncError(f"cannot index slice/array with type {_go_type(index)}")
    if index < 0 or index > size or (for_index and index == size):
        raise _FuncError(f"index out of range: {index}")
    return int(index)


def _index(item: Any, *indexes: Any) -> Any:
    """``index x 1 2``: x[1][2]; a missing map key gives nil, as Go's zero value."""
    for index in indexes:
        if isinstance(item, str):
            data = item.encode()
            item = data[_index_arg(index, len(data), True)]
        elif isinstance(item, (list, tuple)):
            item = item[_index_arg(index, len(item), True)]
        elif isinstance(item, Mapping):
            try:
                item = item.get(index)
            except TypeError:
                raise _FuncError(f"value has type {_go_type(index)}; cannot be a map key") from None
        elif item is None:
            if not isinstance(index, str):
                _index_arg(index, 0, True)
        else:
            raise _FuncError(f"can't index item of type {_go_type(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    """``slice x 1 2``: x[1:2]; strings are sliced by bytes, as in Go."""
    if len(indexes) > 3:
        raise _FuncError(f"too many slice indexes: {len(indexes)}")
    if item is None:
        item = []
    if isinstance(item, str):
        if len(indexes) == 3:
            raise _FuncError("cannot 3-index slice a string")
        seq: Sequence[Any] = item.encode()
    elif isinstance(item, (list, tuple)):
        seq = item
    else:
        raise _FuncError(f"can't slice item of type {_go_type(item)}")
    bounds = [0, len(seq), len(seq)]
    for position, index in enumerate(indexes):
        bounds[position] = _index_arg(index, len(seq), False)
    for low, high in ((bounds[0], bounds[1]), (bounds[1], bounds[2])):
        if low > high:
            raise _FuncError(f"invalid slice index: {low} > {high}")
    result = seq[bounds[0] : bounds[1]]
    return result.decode("utf-8", "replace") if isinstance(result, bytes) else result


def _kind(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple, Mapping)):
        return "collection"
    return "other"


def _equal(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        if ka == "nil" or kb == "nil":
            return False
        raise _FuncError("incompatible types for comparison")
    if ka == "collection":
        raise _FuncError(f"non-comparable type {_go_type(a)}")
    return bool(a == b)


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise _FuncError("missing argument for comparison")
    return any(_equal(a, b) for b in others)


def _ne(a: Any, b: Any) -> bool:
    return not _equal(a, b)


def _less(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka not in ("number", "string") or kb not in ("number", "string"):
        raise _FuncError("invalid type for comparison")
    if ka != kb:
        raise _FuncError("incompatible types for comparison")
    return bool(a < b)


def _le(a: Any, b: Any) -> bool:
    return _less(a, b) or _equal(a, b)


def _gt(a: Any, b: Any) -> bool:
    return not _le(a, b)


def _ge(a: Any, b: Any) -> bool:
    return not _less(a, b)


def _json_float(value: float) -> str:
    """Encode a float as Go's encoding/json does: no trailing ``.0``, exponents only when extreme."""
    if not math.isfinite(value):
        raise _FuncError(f"json: unsupported value: {_go_float(value)}")
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    digits, point = _shortest_digits(value)
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = _exp_from_digits(digits, point)
        return sign + re.sub(r"e-0(\d)$", r"e-\1", text)
    return sign + _fixed_from_digits(digits, point)


def _json_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _to_json(value: Any) -> str:
    """Compact JSON as Go's json.Marshal writes it, keeping mapping order (no HTML escaping)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_json_string(str(k))}:{_to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_to_json(v) for v in value) + "]"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _to_json(dataclasses.asdict(value))
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _to_json(dump())
    raise _FuncError(f"json: unsupported type: {type(value).__name__}")


def _current_date(*_args: Any) -> str:
    return datetime.date.today().isoformat()


def _yesterday_date(*_args: Any) -> str:
    return (datetime.date.today() - datetime.timedelta(days=1)).isoformat()


_TS_TYPES = {
    "string": "string",
    "number": "number",
    "integer": "number",
    "boolean": "boolean",
    "object": "Record<string, any>",
    "null": "null",
}


def _ts_type(schema: Any) -> str:
    """A best-effort TypeScript type for a JSON-schema property (Ollama's ``toTypeScriptType``)."""
    if not isinstance(schema, Mapping):
        return "any"
    enum = schema.get("enum")
    if isinstance(enum, (list, tuple)) and enum:
        return " | ".join(_to_json(v) for v in enum)
    any_of = schema.get("anyOf")
    if isinstance(any_of, (list, tuple)) and any_of:
        return " | ".join(_ts_type(s) for s in any_of)
    types = schema.get("type")
    if isinstance(types, str):
        types = [types]
    if not isinstance(types, (list, tuple)) or not types:
        return "any"
    names = []
    for name in types:
        if name == "array":
            inner = _ts_type(schema.get("items"))
            names.append(f"({inner})[]" if " | " in inner else f"{inner}[]")
        else:
            names.append(_TS_TYPES.get(str(name), "any"))
    return " | ".join(names)


# name -> (minimum args, maximum args or None, implementation); "and"/"or" are evaluated lazily.
_FUNCS: dict[str, tuple[int, int | None, Callable[..., Any] | None]] = {
    "and": (1, None, None),
    "or": (1, None, None),
    "not": (1, 1, _not),
    "len": (1, 1, _len),
    "index": (1, None, _index),
    "slice": (1, None, _slice),
    "eq": (1, None, _eq),
    "ne": (2, 2, _ne),
    "lt": (2, 2, _less),
    "le": (2, 2, _le),
    "gt": (2, 2, _gt),
    "ge": (2, 2, _ge),
    "print": (0, None, _sprint),
    "println": (0, None, _sprintln),
    "printf": (1, None, _printf),
    "html": (0, None, _html),
    "js": (0, None, _js),
    "urlquery": (0, None, _urlquery),
    "json": (1, 1, _to_json),
    "currentDate": (0, None, _current_date),
    "yesterdayDate": (0, None, _yesterday_date),
    "toTypeScriptType": (1, 1, _ts_type),
}


# --------------------------------------------------------------------------------------------------
# Executor
# --------------------------------------------------------------------------------------------------


class _ExecError(Exception):
    """An execution error not yet tagged with its line."""


class _BreakSignal(Exception):
    pass


class _ContinueSignal(Exception):
    pass


class _Missing:
    """Marks "no value piped in" (distinct from None, which is a value)."""


_MISSING = _Missing()


def _field(value: Any, name: str) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return value.get(name)
    if isinstance(value, (str, bytes, int, float, list, tuple)) or name.startswith("_"):
        raise _ExecError(f"can't evaluate field {name} in type {_go_type(value)}")
    return getattr(value, name, None)


def _range_items(value: Any, n_vars: int) -> list[tuple[Any, Any]]:
    """(index or key, element) pairs of a range; maps in sorted key order, ints count up (Go 1.22)."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [(k, value[k]) for k in _sorted_keys(value)]
    if _is_int(value):
        if n_vars > 1:
            raise _ExecError(f"can't use {value} to iterate over more than one variable")
        return [(i, i) for i in range(value)]
    if isinstance(value, (str, bytes, bool, float)) or not isinstance(value, Iterable):
        raise _ExecError(f"range can't iterate over {format_value(value)}")
    return list(enumerate(value))


def _expr_text(expr: _Expr) -> str:
    """Source-like text of an expression, for error messages."""
    if isinstance(expr, _Dot):
        return "."
    if isinstance(expr, _Nil):
        return "nil"
    if isinstance(expr, _Literal):
        return json.dumps(expr.value) if isinstance(expr.value, str) else format_value(expr.value)
    if isinstance(expr, _Field):
        return "".join(f".{n}" for n in expr.names)
    if isinstance(expr, _Variable):
        return expr.name + "".join(f".{n}" for n in expr.names)
    if isinstance(expr, _Identifier):
        return expr.name
    if isinstance(expr, _Chain):
        return _expr_text(expr.node) + "".join(f".{n}" for n in expr.names)
    return "(" + " | ".join(" ".join(_expr_text(a) for a in c.args) for c in expr.cmds) + ")"


class _Exec:
    """One rendering: output buffer and Go's variable stack (name, value), searched from the top."""

    def __init__(self, data: Any) -> None:
        self.out: list[str] = []
        self.vars: list[list[Any]] = [["$", data]]

    def walk(self, dot: Any, nodes: list[_Node]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                self.out.append(node.text)
            elif isinstance(node, _Action):
                value = self.pipeline(dot, node.pipe)
                if not node.pipe.decl:
                    self.out.append("" if value is None else format_value(value))
            elif isinstance(node, _Branch):
                if node.kind == "range":
                    self.walk_range(dot, node)
                else:
                    self.walk_if(dot, node)
            elif isinstance(node, _Break):
                raise _BreakSignal
            else:
                raise _ContinueSignal

    def walk_if(self, dot: Any, node: _Branch) -> None:
        mark = len(self.vars)
        try:
            value = self.pipeline(dot, node.pipe)
            if _truth(value):
                self.walk(value if node.kind == "with" else dot, node.body)
            elif node.else_body is not None:
                self.walk(dot, node.else_body)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot: Any, node: _Branch) -> None:
        mark = len(self.vars)
        try:
            value = self.pipeline(dot, node.pipe)
            try:
                items = _range_items(value, len(node.pipe.decl))
            except _ExecError as exc:
                raise TemplateError(f"line {node.line}: {exc}") from None
            if not items:
                if node.else_body is not None:
                    self.walk(dot, node.else_body)
                return
            body_mark = len(self.vars)
            for index, elem in items:
                self.bind_range_vars(node.pipe, body_mark, index, elem)
                try:
                    self.walk(elem, node.body)
                except _ContinueSignal:
                    pass
                except _BreakSignal:
                    break
                finally:
                    del self.vars[body_mark:]
        finally:
            del self.vars[mark:]

    def bind_range_vars(self, pipe: _Pipeline, top: int, index: Any, elem: Any) -> None:
        decl = pipe.decl
        if not decl:
            return
        if pipe.is_assign:
            self.set_var(pipe.line, decl[0], index if len(decl) > 1 else elem)
            if len(decl) > 1:
                self.set_var(pipe.line, decl[1], elem)
            return
        self.vars[top - 1][1] = elem  # the pipeline pushed the declared variables last
        if len(decl) > 1:
            self.vars[top - 2][1] = index

    def lookup(self, name: str) -> Any:
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry[1]
        raise _ExecError(f"undefined variable: {name}")

    def set_var(self, line: int, name: str, value: Any) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        raise TemplateError(f"line {line}: undefined variable: {name}")

    def pipeline(self, dot: Any, pipe: _Pipeline) -> Any:
        value: Any = _MISSING
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value)
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(pipe.line, name, value)
            else:
                self.vars.append([name, value])
        return value

    def command(self, dot: Any, cmd: _Command, final: Any) -> Any:
        try:
            first = cmd.args[0]
            if isinstance(first, _Identifier):
                return self.call(dot, first.name, cmd.args[1:], final)
            if len(cmd.args) > 1 or final is not _MISSING:
                raise _ExecError(f"can't give argument to non-function {_expr_text(first)}")
            if isinstance(first, _Nil):
                raise _ExecError("nil is not a command")
            return self.arg(dot, first)
        except _ExecError as exc:
            raise TemplateError(f"line {cmd.line}: {exc}") from None

    def arg(self, dot: Any, expr: _Expr) -> Any:
        if isinstance(expr, _Dot):
            return dot
        if isinstance(expr, _Nil):
            return None
        if isinstance(expr, _Literal):
            return expr.value
        if isinstance(expr, _Field):
            return self.fields(dot, expr.names)
        if isinstance(expr, _Variable):
            return self.fields(self.lookup(expr.name), expr.names)
        if isinstance(expr, _Identifier):
            return self.call(dot, expr.name, [], _MISSING)
        if isinstance(expr, _Chain):
            return self.fields(self.arg(dot, expr.node), expr.names)
        return self.pipeline(dot, expr)

    @staticmethod
    def fields(value: Any, names: tuple[str, ...]) -> Any:
        for name in names:
            value = _field(value, name)
        return value

    def call(self, dot: Any, name: str, args: list[_Expr], final: Any) -> Any:
        low, high, func = _FUNCS[name]
        count = len(args) + (final is not _MISSING)
        if count < low or (high is not None and count > high):
            want = f"at least {low}" if high is None else str(low)
            raise _ExecError(f"wrong number of args for {name}: want {want} got {count}")
        if func is None:  # and / or: stop at the first argument that decides the result
            deciding = name == "or"
            value: Any = None
            for expr in args:
                value = self.arg(dot, expr)
                if _truth(value) == deciding:
                    return value
            return final if final is not _MISSING else value
        values = [self.arg(dot, expr) for expr in args]
        if final is not _MISSING:
            values.append(final)
        try:
            return func(*values)
        except (_FuncError, ArithmeticError, TypeError, ValueError) as exc:
            raise _ExecError(f"error calling {name}: {exc}") from None


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def _collect_fields(nodes: list[_Node], found: set[str]) -> None:
    for node in nodes:
        if isinstance(node, _Action):
            _collect_expr_fields(node.pipe, found)
        elif isinstance(node, _Branch):
            _collect_expr_fields(node.pipe, found)
            _collect_fields(node.body, found)
            _collect_fields(node.else_body or [], found)


def _collect_expr_fields(expr: _Expr, found: set[str]) -> None:
    if isinstance(expr, (_Field, _Variable)):
        found.update(n.lower() for n in expr.names)
    elif isinstance(expr, _Chain):
        found.update(n.lower() for n in expr.names)
        _collect_expr_fields(expr.node, found)
    elif isinstance(expr, _Pipeline):
        for cmd in expr.cmds:
            for arg in cmd.args:
                _collect_expr_fields(arg, found)


class GoTemplate:
    """A parsed Go template; render it with :meth:`render`.

    >>> GoTemplate("{{ range .Items }}[{{ . }}]{{ end }}").render({"Items": [1, "a"]})
    '[1][a]'
    """

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._nodes = _Parser(_Lexer(source).run()).parse()
        except RecursionError:
            raise TemplateError("template nests too deeply") from None
        fields: set[str] = set()
        _collect_fields(self._nodes, fields)
        self._fields = frozenset(fields)

    def __repr__(self) -> str:
        return f"GoTemplate({self.source!r})"

    def render(self, data: Mapping[str, Any]) -> str:
        """Execute the template with ``data`` as both ``.`` and ``$``."""
        state = _Exec(data)
        try:
            state.walk(data, self._nodes)
        except RecursionError:
            raise TemplateError("template nests too deeply") from None
        return "".join(state.out)

    def references(self, name: str) -> bool:
        """Whether the template uses field ``name`` anywhere (``.Tools``, ``$.Tools``, ``.Function.Name``).

        Case-insensitive, as Ollama's capability checks are.
        """
        return name.lower() in self._fields
