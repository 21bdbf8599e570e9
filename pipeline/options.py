"""Every number a user sets has a type and a range: :class:`Bound`, checked where the value enters, by one function.

A bound sits on a config dataclass's field as metadata (:func:`bounded`), so the TOML of ``mcr run``, the JSON/TOML
of ``mcr train --config``, a run's ``config.json`` and a checkpoint's model config are all checked by
:func:`check_fields`; a command-line flag takes the same bound as its argparse ``type`` (a :class:`Bound` is
callable on the flag's text). Every failure is one line naming the option, with the file given as ``name``.

Upper bounds are there so that a typo cannot run away (``--workers 10000`` exhausting file descriptors,
``seeds = 2**64`` training forever, ``n_layers = 1e6`` filling memory); each is far past any sensible value and
says why it exists (``why``). The table of them all is in docs/reliability.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Bound:
    """A number option: whole (``kind`` int) or real (float; finite), from ``low`` to ``high``.

    low_open / high_open: the end itself is out (``(0, 1]``...). why: said when a value is past ``high``.
    """

    kind: type
    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    why: str = ""

    def describe(self) -> str:
        """``a whole number from 1 to 64``, ``a number in [0, 1)``..."""
        what = "a whole number" if self.kind is int else "a number"
        if not (self.low_open or self.high_open):
            return f"{what} from {_shown(self.low)} to {_shown(self.high)}"
        return (f"{what} in {'(' if self.low_open else '['}{_shown(self.low)}, {_shown(self.high)}"
                f"{')' if self.high_open else ']'}")

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is refused (``expected ...``), or None when it fits."""
        whole = isinstance(value, int) and not isinstance(value, bool)
        number = whole or (isinstance(value, float) and self.kind is float)
        if not number or not (whole or math.isfinite(value)) or not self._above_low(value):
            return f"expected {self.describe()}"
        if not (value < self.high if self.high_open else value <= self.high):
            return f"expected {self.describe()}" + (f" ({self.why})" if self.why else "")
        return None

    def _above_low(self, value: float) -> bool:
        return value > self.low if self.low_open else value >= self.low

    def check(self, value: Any, name: str) -> Any:
        """``value``, or a one-line ValueError ``NAME = VALUE: expected ...``."""
        if (problem := self.problem(value)) is not None:
            raise ValueError(f"{name} = {_value(value)}: {problem}")
        return value

    def __call__(self, text: str) -> int | float:
        """The value of a command-line flag (argparse's ``type``): its text parsed and checked."""
        try:
            value = self.kind(text)
        except ValueError:
            value = text
        if (problem := self.problem(value)) is not None:
            raise argparse.ArgumentTypeError(f"{text}: {problem}")
        return value


def bounded(default: Any, bound: Bound, *, optional: bool | None = None) -> Any:
    """A dataclass field with ``default`` whose values must fit ``bound`` (None too when ``optional``, which is
    the case when the default is None)."""
    optional = default is None if optional is None else optional
    return dataclasses.field(default=default, metadata={"bound": bound, "optional": optional})


def bound_of(cls: type, name: str) -> Bound:
    """The bound of the field ``name`` of the dataclass ``cls`` (for the flag that sets it)."""
    return next(f.metadata["bound"] for f in dataclasses.fields(cls) if f.name == name)


def check_fields(cls: type, values: Mapping[str, Any], name: Callable[[str], str] = str) -> None:
    """Check the ``values`` of the bounded fields of the dataclass ``cls`` (keys of other fields are left alone).

    name: how a field is called in the error (``lambda key: f"{path}: [config] {key}"``).

    Raises:
        ValueError: one line, ``NAME = VALUE: expected a whole number from 1 to 64``.
    """
    for f in dataclasses.fields(cls):
        if "bound" not in f.metadata or f.name not in values:
            continue
        value = values[f.name]
        if value is None and f.metadata["optional"]:
            continue
        f.metadata["bound"].check(value, name(f.name))


def _shown(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _value(value: Any) -> str:
    """A value as it can be printed on one line, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
