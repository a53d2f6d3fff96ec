"""The builtin template functions and Ollama's extras, by template name in ``FUNCS``."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence, Sized
from typing import Any
from urllib.parse import quote_plus

from .errors import FuncError
from .printf import sprintf
from .values import (
    exp_from_digits,
    fixed_from_digits,
    format_value,
    go_float,
    go_type,
    is_int,
    shortest_digits,
    truth,
)


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
        raise FuncError(f"wrong type for value; expected string; got {go_type(fmt)}")
    return sprintf(fmt, args)


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
    return not truth(value)


def _len(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, Sized):
        return len(value)
    raise FuncError(f"len of type {go_type(value)}")


def _index_arg(index: Any, size: int, for_index: bool) -> int:
    if index is None:
        raise FuncError("cannot index slice/array with nil")
    if not is_int(index):
        raise FuncError(f"cannot index slice/array with type {go_type(index)}")
    if index < 0 or index > size or (for_index and index == size):
        raise FuncError(f"index out of range: {index}")
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
                raise FuncError(f"value has type {go_type(index)}; cannot be a map key") from None
        elif item is None:
            if not isinstance(index, str):
                _index_arg(index, 0, True)
        else:
            raise FuncError(f"can't index item of type {go_type(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    """``slice x 1 2``: x[1:2]; strings are sliced by bytes, as in Go."""
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    if item is None:
        item = []
    if isinstance(item, str):
        if len(indexes) == 3:
            raise FuncError("cannot 3-index slice a string")
        seq: Sequence[Any] = item.encode()
    elif isinstance(item, (list, tuple)):
        seq = item
    else:
        raise FuncError(f"can't slice item of type {go_type(item)}")
    bounds = [0, len(seq), len(seq)]
    for position, index in enumerate(indexes):
        bounds[position] = _index_arg(index, len(seq), False)
    for low, high in ((bounds[0], bounds[1]), (bounds[1], bounds[2])):
        if low > high:
            raise FuncError(f"invalid slice index: {low} > {high}")
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
        raise FuncError("incompatible types for comparison")
    if ka == "collection":
        raise FuncError(f"non-comparable type {go_type(a)}")
    return bool(a == b)


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise FuncError("missing argument for comparison")
    return any(_equal(a, b) for b in others)


def _ne(a: Any, b: Any) -> bool:
    return not _equal(a, b)


def _less(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka not in ("number", "string") or kb not in ("number", "string"):
        raise FuncError("invalid type for comparison")
    if ka != kb:
        raise FuncError("incompatible types for comparison")
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
        raise FuncError(f"json: unsupported value: {go_float(value)}")
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    digits, point = shortest_digits(value)
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = exp_from_digits(digits, point)
        return sign + re.sub(r"e-0(\d)$", r"e-\1", text)
    return sign + fixed_from_digits(digits, point)


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
    raise FuncError(f"json: unsupported type: {type(value).__name__}")


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
FUNCS: dict[str, tuple[int, int | None, Callable[..., Any] | None]] = {
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
