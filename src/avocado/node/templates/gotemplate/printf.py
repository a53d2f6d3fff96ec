"""Go's ``fmt.Sprintf`` for the template ``printf`` function: verbs, flags, width and precision."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .values import format_value, go_float, go_quote, go_type, sorted_keys

_PRINTF_RE = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d*))?(.?)", re.S)
# Go's fmt reads a width or precision only while it stays at most this large before its next digit
# (about ten million at most): a longer number ends the format with %!(NOVERB).
_TOO_LARGE = 1_000_000


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
    return f"%!{verb}({go_type(value)}={format_value(value)})"


def _rune(value: int) -> str:
    """The character for a code point, or U+FFFD for an invalid one, as Go does."""
    return chr(value) if 0 <= value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF else "\ufffd"


def _format_int(value: int, verb: str, spec: _Spec) -> str:
    if verb == "c":
        return _pad(_rune(value), spec)
    if verb == "q":
        return _pad(go_quote(_rune(value), "'", ascii_only="+" in spec.flags), spec)
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
        body = go_float(magnitude)
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
        text = go_quote(text, ascii_only="+" in spec.flags)
    return _pad(text, spec)


def _format_arg(value: Any, verb: str, spec: _Spec) -> str:
    """Format one printf argument; collections apply the verb to each element, as Go does."""
    if verb == "T":
        return _pad(go_type(value), spec)
    if verb == "v" and ("+" in spec.flags or "#" in spec.flags):
        # %+v and %#v are Go's struct-field and Go-syntax forms; for our values only %#v of a
        # string differs from %v (it is quoted).
        if "#" in spec.flags and isinstance(value, str):
            return _pad(go_quote(value if spec.prec is None else value[: spec.prec]), spec)
        spec = _Spec(spec.flags.replace("+", "").replace("#", ""), spec.width, spec.prec)
    if value is None:
        return _pad("<nil>", spec) if verb == "v" else _bad_verb(value, verb)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_format_arg(v, verb, spec) for v in value) + "]"
    if isinstance(value, Mapping):
        pairs = (
            f"{_format_arg(k, verb, spec)}:{_format_arg(value[k], verb, spec)}" for k in sorted_keys(value)
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


def _number(digits: str | None) -> int | None:
    """Go's ``parsenum``: the value of ``digits``, or None when it grows too large (``""``: 0)."""
    if digits is None:
        return None
    value = 0
    for digit in digits:
        if value > _TOO_LARGE:
            return None
        value = value * 10 + ord(digit) - 48
    return value


def sprintf(fmt: str, args: Sequence[Any]) -> str:
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
        size, precision = _number(width), _number(prec)
        if (width and size is None) or (prec and precision is None):  # Go gives up on the rest
            out.append("%!(NOVERB)")
            break
        if not verb:
            out.append("%!(NOVERB)")
        elif verb == "%":
            out.append("%")
        elif used >= len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            spec = _Spec(flags, size, precision)
            out.append(_format_arg(args[used], verb, spec))
            used += 1
    if used < len(args):
        extra = ", ".join("<nil>" if a is None else f"{go_type(a)}={format_value(a)}" for a in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
