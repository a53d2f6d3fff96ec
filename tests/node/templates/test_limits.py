"""A rendering stays within its limits: range iterations, characters made, seconds.

Go's text/template has none; a node renders templates that come with requests. Each limit is
named in the error, and what stays inside them renders as before.
"""

from __future__ import annotations

import pytest

from avocado.node.templates.builtin import CHATML_TEMPLATE
from avocado.node.templates.gotemplate import GoTemplate, LimitExceeded, Limits

SMALL = Limits(iterations=1_000, output=10_000, seconds=60)


def exceeded(source: str, limits: Limits = SMALL) -> LimitExceeded:
    with pytest.raises(LimitExceeded) as info:
        GoTemplate(source).render({"L": list(range(600))}, limits)
    return info.value


def test_range_over_a_huge_int_stops_at_the_iteration_limit() -> None:
    error = exceeded("{{ range 1000000000000 }}{{ end }}")  # no list of a trillion items is built
    assert error.limit == "iterations" and "1000 range iterations" in str(error)


def test_nested_ranges_count_together() -> None:
    assert GoTemplate("{{ range 30 }}{{ range 30 }}{{ end }}{{ end }}").render({}, SMALL) == ""
    assert exceeded("{{ range 40 }}{{ range 30 }}{{ end }}{{ end }}").limit == "iterations"
    assert exceeded("{{ range .L }}{{ range $.L }}{{ end }}{{ end }}").limit == "iterations"


def test_output_is_bounded() -> None:
    assert GoTemplate("{{ range 999 }}x{{ end }}").render({}, SMALL) == "x" * 999
    error = exceeded("{{ range 999 }}xxxxxxxxxxxx{{ end }}")
    assert error.limit == "output" and "10000 characters" in str(error)
    assert exceeded('{{ printf "%20000s" "x" }}').limit == "output"


def test_a_value_that_doubles_is_bounded_before_it_is_written() -> None:
    error = exceeded('{{ $x := "ab" }}{{ range 64 }}{{ $x = print $x $x }}{{ end }}')
    assert error.limit == "output" and "a value" in str(error)


def test_time_is_bounded() -> None:
    quick = Limits(iterations=1_000_000, output=10_000_000, seconds=0.05)
    error = exceeded('{{ range 900000 }}{{ $y := printf "%100000s" "" }}{{ end }}', quick)
    assert error.limit == "seconds" and "0.05s" in str(error)


def test_printf_gives_up_on_widths_and_precisions_as_go_does() -> None:
    """Go's fmt reads at most about ten million as a width or precision: one printf cannot pad to
    gigabytes (checked against Go: ``fmt.Sprintf("%99999999d", 5)``)."""
    render = GoTemplate('{{ printf "%99999999d|%d" 5 6 }}').render
    assert render({}) == "%!(NOVERB)%!(EXTRA int=5, int=6)"
    assert GoTemplate('{{ printf "%.99999999s" "x" }}').render({}) == "%!(NOVERB)%!(EXTRA string=x)"
    assert GoTemplate('{{ printf "%1000000d" 5 | len }}').render({}) == "1000000"


def test_a_model_template_renders_a_long_chat_within_the_default_limits() -> None:
    messages = [{"Role": "user" if i % 2 == 0 else "assistant", "Content": f"{i}"} for i in range(5_001)]
    text = GoTemplate(CHATML_TEMPLATE).render({"Messages": messages, "Tools": []})
    assert text.count("<|im_start|>") == 5_002  # every turn, and the assistant's turn to come
