"""The parse-tree node classes: expressions (``Expr``) and template nodes (``Node``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Dot:
    """``.``: the current value."""


@dataclass(slots=True)
class Nil:
    """``nil``."""


@dataclass(slots=True)
class Literal:
    value: Any


@dataclass(slots=True)
class Field:
    names: tuple[str, ...]  # .A.B, relative to dot


@dataclass(slots=True)
class Variable:
    name: str
    names: tuple[str, ...] = ()  # $x.A.B


@dataclass(slots=True)
class Identifier:
    name: str  # a function


@dataclass(slots=True)
class Chain:
    node: Expr  # (pipeline).A.B
    names: tuple[str, ...]


@dataclass(slots=True)
class Command:
    args: list[Expr]
    line: int


@dataclass(slots=True)
class Pipeline:
    decl: list[str]
    is_assign: bool
    cmds: list[Command]
    line: int


Expr = Dot | Nil | Literal | Field | Variable | Identifier | Chain | Pipeline


@dataclass(slots=True)
class Text:
    text: str


@dataclass(slots=True)
class Action:
    pipe: Pipeline


@dataclass(slots=True)
class Branch:
    kind: str  # if, with, range
    pipe: Pipeline
    body: list[Node]
    else_body: list[Node] | None
    line: int


@dataclass(slots=True)
class Break:
    line: int


@dataclass(slots=True)
class Continue:
    line: int


Node = Text | Action | Branch | Break | Continue
