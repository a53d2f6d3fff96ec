"""The executor: renders a parse tree against data, with Go's variable scoping and ``break``/``continue``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ExecError, FuncError, TemplateError
from .functions import FUNCS
from .limits import Budget, Limits
from .nodes import (
    Action,
    Branch,
    Break,
    Chain,
    Command,
    Dot,
    Expr,
    Field,
    Identifier,
    Literal,
    Nil,
    Node,
    Pipeline,
    Text,
    Variable,
)
from .values import format_value, go_type, is_int, sorted_keys, truth


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
        raise ExecError(f"can't evaluate field {name} in type {go_type(value)}")
    return getattr(value, name, None)


def _range_items(value: Any, n_vars: int) -> tuple[Iterable[tuple[Any, Any]], bool]:
    """(index or key, element) pairs of a range, and whether there are none; maps in sorted key
    order, ints count up (Go 1.22), one at a time: ``range 1000000000`` builds no list."""
    if value is None:
        return (), True
    if isinstance(value, Mapping):
        return [(k, value[k]) for k in sorted_keys(value)], not value
    if is_int(value):
        if n_vars > 1:
            raise ExecError(f"can't use {value} to iterate over more than one variable")
        return enumerate(range(value)), value <= 0
    if isinstance(value, (str, bytes, bool, float)) or not isinstance(value, Iterable):
        raise ExecError(f"range can't iterate over {format_value(value)}")
    items = list(value)
    return enumerate(items), not items


def _expr_text(expr: Expr) -> str:
    """Source-like text of an expression, for error messages."""
    if isinstance(expr, Dot):
        return "."
    if isinstance(expr, Nil):
        return "nil"
    if isinstance(expr, Literal):
        return json.dumps(expr.value) if isinstance(expr.value, str) else format_value(expr.value)
    if isinstance(expr, Field):
        return "".join(f".{n}" for n in expr.names)
    if isinstance(expr, Variable):
        return expr.name + "".join(f".{n}" for n in expr.names)
    if isinstance(expr, Identifier):
        return expr.name
    if isinstance(expr, Chain):
        return _expr_text(expr.node) + "".join(f".{n}" for n in expr.names)
    return "(" + " | ".join(" ".join(_expr_text(a) for a in c.args) for c in expr.cmds) + ")"


class Exec:
    """One rendering: output buffer and Go's variable stack (name, value), searched from the top."""

    def __init__(self, data: Any, limits: Limits) -> None:
        self.out: list[str] = []
        self.vars: list[list[Any]] = [["$", data]]
        self.budget = Budget(limits)

    def write(self, text: str) -> None:
        self.budget.output(len(text))
        self.out.append(text)

    def walk(self, dot: Any, nodes: list[Node]) -> None:
        for node in nodes:
            if isinstance(node, Text):
                self.write(node.text)
            elif isinstance(node, Action):
                value = self.pipeline(dot, node.pipe)
                if not node.pipe.decl:
                    self.write("" if value is None else format_value(value))
            elif isinstance(node, Branch):
                if node.kind == "range":
                    self.walk_range(dot, node)
                else:
                    self.walk_if(dot, node)
            elif isinstance(node, Break):
                raise _BreakSignal
            else:
                raise _ContinueSignal

    def walk_if(self, dot: Any, node: Branch) -> None:
        mark = len(self.vars)
        try:
            value = self.pipeline(dot, node.pipe)
            if truth(value):
                self.walk(value if node.kind == "with" else dot, node.body)
            elif node.else_body is not None:
                self.walk(dot, node.else_body)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot: Any, node: Branch) -> None:
        mark = len(self.vars)
        try:
            value = self.pipeline(dot, node.pipe)
            try:
                items, empty = _range_items(value, len(node.pipe.decl))
            except ExecError as exc:
                raise TemplateError(f"line {node.line}: {exc}") from None
            if empty:
                if node.else_body is not None:
                    self.walk(dot, node.else_body)
                return
            body_mark = len(self.vars)
            for index, elem in items:
                self.budget.iteration()
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

    def bind_range_vars(self, pipe: Pipeline, top: int, index: Any, elem: Any) -> None:
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
        raise ExecError(f"undefined variable: {name}")

    def set_var(self, line: int, name: str, value: Any) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        raise TemplateError(f"line {line}: undefined variable: {name}")

    def pipeline(self, dot: Any, pipe: Pipeline) -> Any:
        value: Any = _MISSING
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value)
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(pipe.line, name, value)
            else:
                self.vars.append([name, value])
        return value

    def command(self, dot: Any, cmd: Command, final: Any) -> Any:
        try:
            first = cmd.args[0]
            if isinstance(first, Identifier):
                return self.call(dot, first.name, cmd.args[1:], final)
            if len(cmd.args) > 1 or final is not _MISSING:
                raise ExecError(f"can't give argument to non-function {_expr_text(first)}")
            if isinstance(first, Nil):
                raise ExecError("nil is not a command")
            return self.arg(dot, first)
        except ExecError as exc:
            raise TemplateError(f"line {cmd.line}: {exc}") from None

    def arg(self, dot: Any, expr: Expr) -> Any:
        if isinstance(expr, Dot):
            return dot
        if isinstance(expr, Nil):
            return None
        if isinstance(expr, Literal):
            return expr.value
        if isinstance(expr, Field):
            return self.fields(dot, expr.names)
        if isinstance(expr, Variable):
            return self.fields(self.lookup(expr.name), expr.names)
        if isinstance(expr, Identifier):
            return self.call(dot, expr.name, [], _MISSING)
        if isinstance(expr, Chain):
            return self.fields(self.arg(dot, expr.node), expr.names)
        return self.pipeline(dot, expr)

    @staticmethod
    def fields(value: Any, names: tuple[str, ...]) -> Any:
        for name in names:
            value = _field(value, name)
        return value

    def call(self, dot: Any, name: str, args: list[Expr], final: Any) -> Any:
        low, high, func = FUNCS[name]
        count = len(args) + (final is not _MISSING)
        if count < low or (high is not None and count > high):
            want = f"at least {low}" if high is None else str(low)
            raise ExecError(f"wrong number of args for {name}: want {want} got {count}")
        if func is None:  # and / or: stop at the first argument that decides the result
            deciding = name == "or"
            value: Any = None
            for expr in args:
                value = self.arg(dot, expr)
                if truth(value) == deciding:
                    return value
            return final if final is not _MISSING else value
        values = [self.arg(dot, expr) for expr in args]
        if final is not _MISSING:
            values.append(final)
        try:
            result = func(*values)
        except (FuncError, ArithmeticError, TypeError, ValueError) as exc:
            raise ExecError(f"error calling {name}: {exc}") from None
        if isinstance(result, str):
            self.budget.value(len(result))
        return result
