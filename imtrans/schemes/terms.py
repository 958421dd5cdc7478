"""Extra generator terms: losses added to a scheme's generator objective under their own ``[losses]`` key.

How such a term is called is *declared* by the loss, never guessed from its
signature: a class (or instance) attribute ``term_kind`` says which of two
conventions it follows, with ``out = generator(src)`` for one translation
direction:

* ``term_kind = "translation"``: ``loss(src, out, generator) -> scalar``; the
  loss sees the source, the translation and the translator (feature losses
  such as PatchNCE call ``generator.encode``);
* ``term_kind = "pixel"``: ``loss(out, src) -> scalar``, i.e. the usual
  ``loss(pred, target)`` with the translation as prediction and its source as
  target: the term keeps the translation close to its input.

A term whose declared kind does not fit its ``forward`` is refused when the
scheme is built (``imtrans check`` already says so), and a term whose value
does not depend on the generator's weights (so it cannot train anything) is
reported once with a :class:`TermWarning`.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Literal, get_args

import torch
from torch import nn

from imtrans.errors import ImtransError, ImtransWarning
from imtrans.registry import record_of

TermKind = Literal["translation", "pixel"]
TERM_KINDS: tuple[str, ...] = get_args(TermKind)
CALLS = {"translation": "loss(src, out, generator)", "pixel": "loss(out, src)"}


class TermWarning(ImtransWarning):
    """An extra generator term that cannot train the generator (its value has no gradient path to it)."""


def _positional(fn) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def declared_kind(key: str, loss: nn.Module) -> TermKind:
    """The loss's declared ``term_kind``, checked against its ``forward``; raises ImtransError if they disagree."""
    rec = record_of(loss)
    name = rec.name if rec is not None else type(loss).__name__
    where = f"[losses.{key}] (loss '{name}')"
    kind = getattr(loss, "term_kind", None)
    if kind not in TERM_KINDS:
        got = "does not declare term_kind" if kind is None else f"declares term_kind = {kind!r}"
        raise ImtransError(
            f"{where} is used as an extra generator term but {got}; set term_kind = \"translation\" on the loss "
            f"class if it is called {CALLS['translation']}, or term_kind = \"pixel\" if it is called "
            f"{CALLS['pixel']} (see docs/plugins.md, Loss kinds)"
        )
    forward = loss.forward
    params = _positional(forward)
    n = 3 if kind == "translation" else 2
    try:
        inspect.signature(forward).bind(*([None] * n))
        ok = True
    except TypeError:
        ok = False
    if kind == "translation":
        # a third parameter with a default is an option (e.g. a weight), not the generator
        ok = ok and len(params) >= 3 and all(p.default is inspect.Parameter.empty for p in params[:3])
    else:
        ok = ok and not (len(params) >= 3 and params[2].name == "generator")
    if not ok:
        raise ImtransError(
            f"{where} declares term_kind = {kind!r}, called {CALLS[kind]}, but its forward"
            f"{inspect.signature(forward)} does not take that call; fix term_kind or forward's parameters"
        )
    return kind


def reaches(value: torch.Tensor, params: list[nn.Parameter]) -> bool:
    """Whether ``value``'s autograd graph reaches any of ``params`` (a walk of the graph: no compute)."""
    targets = {id(p) for p in params}
    start = getattr(value, "grad_fn", None)
    stack, seen = ([start], {start}) if start is not None else ([], set())
    while stack:
        node = stack.pop()
        var = getattr(node, "variable", None)  # AccumulateGrad nodes hold the leaf they feed
        if var is not None and id(var) in targets:
            return True
        for nxt, _ in node.next_functions:
            if nxt is not None and nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return False


class ExtraTerm:
    """One extra generator term: the loss, its weight and its declared call, checked once for a gradient path."""

    def __init__(self, key: str, loss: nn.Module, weight: float) -> None:
        self.key = key
        self.loss = loss
        self.weight = float(weight)
        self.kind: TermKind = declared_kind(key, loss)
        self._checked = False

    def __call__(self, src: torch.Tensor, out: torch.Tensor, generator: nn.Module, **kwargs) -> torch.Tensor:
        """The unweighted value for one direction (``out = generator(src)``)."""
        if self.kind == "translation":
            value = self.loss(src, out, generator, **kwargs)
        else:
            value = self.loss(out, src, **kwargs)
        if not self._checked and torch.is_grad_enabled():
            self._checked = True
            if not reaches(value, list(generator.parameters())):
                warnings.warn(
                    f"[losses.{self.key}] has no gradient path to the generator: its value does not depend on "
                    f"the generator's weights, so it trains nothing; check that the loss uses `out` (declared "
                    f"term_kind = {self.kind!r}: called {CALLS[self.kind]})",
                    TermWarning,
                    stacklevel=2,
                )
        return value
