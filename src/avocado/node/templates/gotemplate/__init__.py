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

Unlike Go, a rendering has :class:`Limits` (``range`` iterations, output size, time): templates
may come with requests.

Strings follow Go's byte semantics where Go's do: ``len``, ``index`` and ``slice`` count UTF-8 bytes.
"""

from __future__ import annotations

from .errors import LimitExceeded, TemplateError
from .limits import Limits
from .template import GoTemplate
from .values import format_value

__all__ = ["GoTemplate", "LimitExceeded", "Limits", "TemplateError", "format_value"]
