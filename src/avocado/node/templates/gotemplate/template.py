"""``GoTemplate``: a template parsed once, rendered with :meth:`GoTemplate.render` many times."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import TemplateError
from .executor import Exec
from .lexer import Lexer
from .limits import Limits
from .nodes import Action, Branch, Chain, Expr, Field, Node, Pipeline, Variable
from .parser import Parser

DEFAULT_LIMITS = Limits()


def _collect_fields(nodes: list[Node], found: set[str]) -> None:
    for node in nodes:
        if isinstance(node, Action):
            _collect_expr_fields(node.pipe, found)
        elif isinstance(node, Branch):
            _collect_expr_fields(node.pipe, found)
            _collect_fields(node.body, found)
            _collect_fields(node.else_body or [], found)


def _collect_expr_fields(expr: Expr, found: set[str]) -> None:
    if isinstance(expr, (Field, Variable)):
        found.update(n.lower() for n in expr.names)
    elif isinstance(expr, Chain):
        found.update(n.lower() for n in expr.names)
        _collect_expr_fields(expr.node, found)
    elif isinstance(expr, Pipeline):
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
            self._nodes = Parser(Lexer(source).run()).parse()
        except RecursionError:
            raise TemplateError("template nests too deeply") from None
        fields: set[str] = set()
        _collect_fields(self._nodes, fields)
        self._fields = frozenset(fields)

    def __repr__(self) -> str:
        return f"GoTemplate({self.source!r})"

    def render(self, data: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> str:
        """Execute the template with ``data`` as both ``.`` and ``$``, within ``limits``
        (:class:`~.errors.LimitExceeded` names the one it went past)."""
        state = Exec(data, limits)
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
