"""The lexer: template source to tokens, with Go's string unquoting and number literals."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from .errors import TemplateError

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
class Token:
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


class Lexer:
    """Split template source into text and action tokens, applying trim markers and comments."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.pos = 0
        self.tokens: list[Token] = []
        self._newlines = [i for i, ch in enumerate(src) if ch == "\n"]

    def line_at(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    def error(self, msg: str, pos: int) -> NoReturn:
        raise TemplateError(f"line {self.line_at(pos)}: {msg}")

    def emit(self, kind: str, text: str, pos: int, space: bool = False, literal: Any = None) -> None:
        self.tokens.append(Token(kind, text, self.line_at(pos), space, literal))

    def run(self) -> list[Token]:
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
