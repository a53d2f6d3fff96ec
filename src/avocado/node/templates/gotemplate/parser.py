"""The parser: tokens to a parse tree, checking variables and functions as Go does."""

from __future__ import annotations

import json
from typing import NoReturn

from .errors import TemplateError
from .functions import FUNCS
from .lexer import Token
from .nodes import (
    Action,
    Branch,
    Break,
    Chain,
    Command,
    Continue,
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

_OPERAND_START = frozenset({"bool", "dot", "field", "ident", "number", "nil", "string", "var", "lparen"})


def _describe(tok: Token) -> str:
    if tok.kind == "eof":
        return "EOF"
    if tok.kind == "field":
        return f'".{tok.text}"'
    return json.dumps(tok.text)


class Parser:
    """Recursive-descent parser over the lexer's tokens, checking variables and functions as Go does."""

    def __init__(self, tokens: list[Token]) -> None:
        self.toks = tokens
        self.i = 0
        self.vars = ["$"]
        self.range_depth = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def next(self) -> Token:
        tok = self.peek()
        self.i = min(self.i + 1, len(self.toks) - 1)
        return tok

    def error(self, msg: str, tok: Token) -> NoReturn:
        raise TemplateError(f"line {tok.line}: {msg}")

    def unexpected(self, tok: Token, context: str) -> NoReturn:
        self.error(f"unexpected {_describe(tok)} in {context}", tok)

    def expect(self, kind: str, context: str) -> Token:
        tok = self.next()
        if tok.kind != kind:
            self.unexpected(tok, context)
        return tok

    def parse(self) -> list[Node]:
        nodes, stop = self.item_list()
        if stop is not None:
            self.error(f"unexpected {{{{{stop.text}}}}}", stop)
        return nodes

    def item_list(self) -> tuple[list[Node], Token | None]:
        """Parse nodes up to EOF (returns None) or an ``{{end}}``/``{{else`` (returns that keyword)."""
        nodes: list[Node] = []
        while True:
            tok = self.next()
            if tok.kind == "eof":
                return nodes, None
            if tok.kind == "text":
                nodes.append(Text(tok.text))
                continue
            word = self.peek()
            if word.kind != "keyword":
                nodes.append(Action(self.pipeline("command", "right")))
                continue
            self.next()
            if word.text == "end":
                self.expect("right", "end")
                return nodes, word
            if word.text == "else":
                return nodes, word
            nodes.append(self.keyword_action(word))

    def keyword_action(self, word: Token) -> Node:
        if word.text in ("if", "with", "range"):
            return self.control(word.text, word.line)
        if word.text in ("break", "continue"):
            self.expect("right", word.text)
            if self.range_depth == 0:
                self.error(f"{{{{{word.text}}}}} outside {{{{range}}}}", word)
            return Break(word.line) if word.text == "break" else Continue(word.line)
        self.error(f"{{{{{word.text}}}}} is not supported", word)

    def control(self, kind: str, line: int) -> Branch:
        saved = len(self.vars)
        pipe = self.pipeline(kind, "right")
        self.range_depth += kind == "range"
        body, stop = self.item_list()
        self.range_depth -= kind == "range"
        if stop is None:
            self.error("unexpected EOF", self.peek())
        else_body: list[Node] | None = None
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
        return Branch(kind, pipe, body, else_body, line)

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

    def pipeline(self, context: str, end: str) -> Pipeline:
        line = self.peek().line
        decl, is_assign = self.declarations(context)
        cmds: list[Command] = []
        while True:
            tok = self.peek()
            if tok.kind == end:
                self.next()
                self.check_pipeline(cmds, context, tok)
                return Pipeline(decl, is_assign, cmds, line)
            if tok.kind not in _OPERAND_START:
                self.unexpected(tok, context)
            cmds.append(self.command())

    def check_pipeline(self, cmds: list[Command], context: str, tok: Token) -> None:
        if not cmds:
            self.error(f"missing value for {context}", tok)
        for stage, cmd in enumerate(cmds[1:], start=2):
            if isinstance(cmd.args[0], (Literal, Dot, Nil)):
                self.error(f"non executable command in pipeline stage {stage}", tok)

    def command(self) -> Command:
        line = self.peek().line
        args: list[Expr] = []
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
        return Command(args, line)

    def operand(self) -> Expr | None:
        node = self.term()
        if node is None:
            return None
        names: list[str] = []
        while self.peek().kind == "field" and not self.peek().space:
            names.append(self.next().text)
        if not names:
            return node
        if isinstance(node, Field):
            return Field(node.names + tuple(names))
        if isinstance(node, Variable):
            return Variable(node.name, node.names + tuple(names))
        if isinstance(node, (Literal, Nil, Dot)):
            self.error(f"unexpected . after term {names[0]!r}", self.peek())
        return Chain(node, tuple(names))

    def term(self) -> Expr | None:
        tok = self.peek()
        if tok.kind not in _OPERAND_START:
            return None
        self.next()
        if tok.kind == "ident":
            if tok.text not in FUNCS:
                self.error(f"function {json.dumps(tok.text)} not defined", tok)
            return Identifier(tok.text)
        if tok.kind == "var":
            if tok.text not in self.vars:
                self.error(f"undefined variable {json.dumps(tok.text)}", tok)
            return Variable(tok.text)
        if tok.kind == "lparen":
            return self.pipeline("parenthesized pipeline", "rparen")
        if tok.kind == "dot":
            return Dot()
        if tok.kind == "nil":
            return Nil()
        if tok.kind == "field":
            return Field((tok.text,))
        if tok.kind == "bool":
            return Literal(tok.text == "true")
        return Literal(tok.literal)  # number, char or string
