"""The loss registry: the one source of loss names for suites, the CLI and the leaderboard.

``@register_loss("name")`` on a loss's ``nn.Module`` class records it; :func:`create_loss` builds
a loss (or a weighted sum of losses) from a spec; :func:`list_losses` and :func:`get_loss_info`
describe what is registered.

Spec forms accepted by :func:`create_loss`:

- a name: ``"msml"``;
- a weighted sum: ``"bce+0.1*msml"``, ``"0.5*asl + 0.5*zlpr"`` (``weight*name`` or
  ``name*weight``; a missing weight is 1);
- a mapping, one term with its own kwargs: ``{"name": "asl", "gamma_neg": 2}`` (an optional
  ``"weight"`` key makes it a one-term weighted sum);
- a list of mappings, a weighted sum: ``[{"name": "bce"}, {"name": "msml", "weight": 0.1}]``.

Keyword arguments of :func:`create_loss` (``None`` values are dropped, timm style, so unset CLI
options never override a loss's own defaults):

- for a single loss they go to that loss; a name it does not take is a ``ValueError``;
- for a weighted sum each one goes to every term that accepts it (``reduction="sum"`` reaches
  all terms, ``gamma_neg=2`` only asl); one that no term accepts is a ``ValueError``;
- a term's own mapping kwargs win over these shared ones (the more specific setting wins);
- the terms of a weighted sum are all ``reduction="none"`` or none of them is (a (B,) value
  plus a scalar would broadcast silently).

Dataset statistics: ``stats`` is a dict (keys today: ``"class_counts"``, ``"num_samples"``). A loss
that declares ``needs=("class_counts",)`` receives ``stats["class_counts"]`` as its keyword argument
``class_counts`` unless that keyword is given directly; missing both is a ``ValueError`` that says
what to pass. Keys that no term needs are ignored, so a harness may always pass its stats.
``"num_classes"`` is derived from ``class_counts`` when the stats do not hold it (the size of a
loss's per-class parameters).

Losses with state (parameters, buffers, hook positions) declare it (``stateful=True`` and the
fields of :class:`LossInfo` that follow it); :func:`losses.training_contract` turns a built loss
into what a training loop must do (``losses/_stateful.py``). In a weighted sum: the terms may
name at most one optimizer between them, and a loss registered ``composable=False`` refuses to
be a term (both checked by :func:`create_loss`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from ._common import REDUCTIONS, FunctionalLoss, compute_dtype, validate_inputs
from ._stateful import StatefulLoss

__all__ = [
    "LossInfo",
    "WeightedSumLoss",
    "create_loss",
    "get_loss_info",
    "list_losses",
    "register_loss",
]


@dataclass(frozen=True)
class LossInfo:
    """What the registry knows about one loss.

    Attributes:
        name: registered name (used in specs, suites, the CLI and the leaderboard).
        cls: the ``nn.Module`` class; ``cls(**kwargs)`` builds the loss.
        fn: the functional form ``fn(logits, targets, **kwargs)`` (None if the loss has none).
        needs: keys of the dataset statistics the loss requires (passed as keyword arguments).
        batch_coupled: the loss of a sample depends on the other samples of the batch.
        reference: the publication the loss follows.
        reductions: the ``reduction`` values the loss supports.
        peer: the installed implementation whose defaults and values the loss follows (checked
            by ``tests/losses/test_peers.py``), or "" when none is installed (then the loss's
            docstring cites the paper and the official code, and says where it deviates).
        stateful: the module carries state that training changes (parameters, buffers, hook
            positions): a training loop saves ``state_dict()`` with its checkpoints, restores
            it on resume and calls the hooks (:class:`losses._stateful.StatefulLoss`).
        optimizer: the optimizer the loss must be trained with, a name of
            :data:`losses.LOSS_OPTIMIZERS` (e.g. "pesg"), or "" for the run's own.
        needs_index: the training forward takes ``index=`` (the batch's sample indices into the
            training set); evaluation passes none.
        param_lr: the lr of the loss's parameters, as a multiple of the run's lr.
        param_weight_decay: whether the run's weight decay applies to the loss's parameters.
        composable: the loss may be a term of a weighted sum.
    """

    name: str
    cls: type[nn.Module]
    fn: Callable[..., Tensor] | None
    needs: tuple[str, ...]
    batch_coupled: bool
    reference: str
    reductions: tuple[str, ...] = REDUCTIONS
    peer: str = ""
    stateful: bool = False
    optimizer: str = ""
    needs_index: bool = False
    param_lr: float = 1.0
    param_weight_decay: bool = False
    composable: bool = True


_REGISTRY: dict[str, LossInfo] = {}
# old name -> registered name: a renamed loss keeps its old name working (suites, run ids)
_ALIASES: dict[str, str] = {}


def register_loss(
    name: str,
    *,
    needs: Sequence[str] = (),
    batch_coupled: bool = False,
    reference: str = "",
    reductions: Sequence[str] = REDUCTIONS,
    fn: Callable[..., Tensor] | None = None,
    peer: str = "",
    stateful: bool = False,
    optimizer: str = "",
    needs_index: bool = False,
    param_lr: float = 1.0,
    param_weight_decay: bool = False,
    composable: bool = True,
    aliases: Sequence[str] = (),
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator that registers an ``nn.Module`` loss under ``name``.

    Args:
        name: lowercase identifier, unique among the registered losses.
        needs: dataset-statistics keys the loss requires; each arrives as the keyword argument
            of the same name (see :func:`create_loss`).
        batch_coupled: the loss couples the samples of a batch (e.g. batch label statistics).
        reference: the publication, e.g. ``"Ge et al. 2018"``.
        reductions: supported ``reduction`` values (batch-coupled losses may drop "none").
        fn: the functional form; defaults to the class's ``fn`` attribute
            (set by :class:`losses._common.FunctionalLoss`).
        peer: the installed implementation the loss follows, e.g.
            ``"torchvision.ops.sigmoid_focal_loss"`` (see :class:`LossInfo`).
        stateful, optimizer, needs_index, param_lr, param_weight_decay, composable: the
            contract of a loss with state (see :class:`LossInfo`).
        aliases: former names of a renamed loss; specs may keep using them (they build this
            loss), and ``mlbench.suite.identity.RENAMED_LOSSES`` keeps the run ids they had.
    """
    if not (isinstance(name, str) and name.isidentifier() and name == name.lower()):
        raise ValueError(f"Expected loss name to be a lowercase identifier but got {name!r}")
    bad = [r for r in reductions if r not in REDUCTIONS]
    if bad or not reductions:
        raise ValueError(
            f"Expected `reductions` to be a non-empty subset of {list(REDUCTIONS)} but got {list(reductions)}"
        )

    if not (isinstance(param_lr, (int, float)) and param_lr > 0):
        raise ValueError(f"Expected `param_lr` to be a number > 0 but got {param_lr!r}")

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ValueError(
                f"Expected register_loss({name!r}) to decorate an nn.Module class but got {cls!r}"
            )
        if name in _ALIASES:
            raise ValueError(f"Loss name {name!r} is an alias of {_ALIASES[name]!r}")
        old = _REGISTRY.get(name)
        if old is not None and (old.cls.__module__, old.cls.__qualname__) != (
            cls.__module__,
            cls.__qualname__,
        ):
            raise ValueError(
                f"Loss name {name!r} is already registered by {old.cls.__module__}.{old.cls.__qualname__}"
            )
        for alias in aliases:
            taken = alias in _REGISTRY or _ALIASES.get(alias, name) != name
            if taken or not alias.isidentifier() or alias == name:
                raise ValueError(f"Loss alias {alias!r} of {name!r} is taken or not a name")
            _ALIASES[alias] = name
        _REGISTRY[name] = LossInfo(
            name=name,
            cls=cls,
            fn=fn if fn is not None else getattr(cls, "fn", None),
            needs=tuple(needs),
            batch_coupled=batch_coupled,
            reference=reference,
            reductions=tuple(reductions),
            peer=peer,
            stateful=stateful,
            optimizer=optimizer,
            needs_index=needs_index,
            param_lr=float(param_lr),
            param_weight_decay=param_weight_decay,
            composable=composable,
        )
        return cls

    return decorator


def info_for_module(module: Any) -> LossInfo | None:
    """The :class:`LossInfo` of a built loss module's class, or None if it is not registered."""
    for info in _REGISTRY.values():
        if type(module) is info.cls:
            return info
    return None


def list_losses() -> list[str]:
    """The registered loss names, sorted."""
    return sorted(_REGISTRY)


def loss_aliases() -> dict[str, str]:
    """Former names of renamed losses: ``{old: registered name}``."""
    return dict(_ALIASES)


def get_loss_info(name: str) -> LossInfo:
    """The :class:`LossInfo` of a registered loss (or of the loss an alias names);
    ``ValueError`` listing the names otherwise."""
    try:
        return _REGISTRY[_ALIASES.get(name, name)]
    except (KeyError, TypeError):
        raise ValueError(
            f"Expected loss name to be one of {list_losses()} but got {name!r}"
        ) from None


class WeightedSumLoss(nn.Module):
    """Σ_i weight_i · loss_i(logits, targets), the module behind a composite spec.

    The terms share the work they would each repeat: the inputs are validated once (when any
    term validates) and the targets converted once to the compute dtype, then every
    :class:`~losses._common.FunctionalLoss` term runs its function on them with
    ``validate=False``. The logits go to every term as given (converting fp32 logits is free,
    and the MSML Triton kernel reads bf16 logits at half the bytes of fp32). Other
    ``nn.Module`` terms get the inputs as given.

    Attributes:
        terms: the term modules (``nn.ModuleList``), in spec order.
        names: the registered name of each term.
        weights: the weight of each term.
    """

    def __init__(self, terms: Sequence[tuple[str, float, nn.Module]]) -> None:
        super().__init__()
        if not terms:
            raise ValueError("Expected at least one term in a weighted-sum loss but got none")
        self.names = tuple(name for name, _, _ in terms)
        self.weights = tuple(float(w) for _, w, _ in terms)
        self.terms = nn.ModuleList(module for _, _, module in terms)
        self._index_terms = tuple(_needs_index(term) for term in self.terms)

    def forward(self, logits: Tensor, targets: Tensor, index: Tensor | None = None) -> Tensor:
        """The weighted sum; ``index`` (sample indices) reaches the terms that need it."""
        shared = [
            _takes_prepared(term) and not needs
            for term, needs in zip(self.terms, self._index_terms, strict=True)
        ]
        if any(shared):
            validate = any(
                t.options["validate"] for t, s in zip(self.terms, shared, strict=True) if s
            )
            if validate:
                validate_inputs(logits, targets)
            y = targets.to(compute_dtype(logits.dtype))
        total = None
        for term, weight, prepared, needs in zip(
            self.terms, self.weights, shared, self._index_terms, strict=True
        ):
            if needs:
                value = term(logits, targets, index=index)
            elif prepared:
                value = term.fn(logits, y, **{**term.loss_kwargs(), "validate": False})
            else:
                value = term(logits, targets)
            value = value if weight == 1.0 else value * weight
            total = value if total is None else total + value
        return total

    def extra_repr(self) -> str:
        return " + ".join(f"{w:g}*{n}" for w, n in zip(self.weights, self.names, strict=True))


def _takes_prepared(term: nn.Module) -> bool:
    """Whether a term takes inputs already validated, targets in the compute dtype: a
    FunctionalLoss (or StatefulLoss) whose function has the convention's ``validate`` switch
    (a term that takes sample indices is called as a module instead)."""
    return isinstance(term, (FunctionalLoss, StatefulLoss)) and "validate" in term.options


def _needs_index(term: nn.Module) -> bool:
    info = info_for_module(term)
    return info is not None and info.needs_index


def _unique_labels(names: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    labels = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        labels.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return tuple(labels)


@dataclass
class _Term:
    name: str
    weight: float | None  # None: no weight written (a plain single loss)
    kwargs: dict[str, Any]


def create_loss(spec: Any, *, stats: Mapping[str, Any] | None = None, **kwargs: Any) -> nn.Module:
    """Build a loss module from a spec (see the module docstring for the forms and rules).

    Args:
        spec: a name, a weighted-sum string, a mapping or a list of mappings.
        stats: dataset statistics, e.g. ``{"class_counts": (C,) positives, "num_samples": N}``.
        **kwargs: keyword arguments for the loss(es); ``None`` values are dropped.

    Returns:
        The loss module: the registered class itself for a single unweighted term, otherwise a
        :class:`WeightedSumLoss`.

    Raises:
        ValueError: unknown name, malformed spec, bad weight, unknown kwarg, unsupported
            reduction or missing dataset statistic.
    """
    terms = _parse_spec(spec)
    shared = {k: v for k, v in kwargs.items() if v is not None}
    accepted = {t.name: _accepted_kwargs(get_loss_info(t.name).cls) for t in terms}
    unknown = sorted(
        k for k in shared if not any(acc is _ANY or k in acc for acc in accepted.values())
    )
    if unknown:
        names = "/".join(sorted({t.name for t in terms}))
        valid = sorted(set().union(*(a for a in accepted.values() if a is not _ANY)))
        raise ValueError(
            f"Expected keyword arguments of loss {names!r} to be among {valid} but got unknown "
            f"{unknown}"
        )
    modules = []
    for term in terms:
        acc = accepted[term.name]
        own = {k: v for k, v in shared.items() if acc is _ANY or k in acc}
        own.update(term.kwargs)
        modules.append((term.name, term.weight, _build(term.name, own, stats)))
    if len(modules) == 1 and modules[0][1] is None:
        return modules[0][2]
    _check_term_reductions(modules)
    _check_term_contracts([name for name, _, _ in modules])
    return WeightedSumLoss([(n, 1.0 if w is None else w, m) for n, w, m in modules])


_ANY = frozenset({"*"})  # sentinel: the class takes **kwargs


def _check_term_reductions(modules: Sequence[tuple[str, Any, nn.Module]]) -> None:
    """Refuse "none" beside a scalar reduction: (B,) + () would broadcast silently."""
    labels = _unique_labels([name for name, _, _ in modules])  # a name may repeat
    reductions = {
        label: module.options["reduction"]
        for label, (_, _, module) in zip(labels, modules, strict=True)
        if "reduction" in getattr(module, "options", {})
    }
    if "none" in reductions.values() and len(set(reductions.values())) > 1:
        raise ValueError(
            "Expected the terms of a weighted-sum loss to agree on reduction='none' (per-sample "
            f"values cannot be added to scalars) but got {reductions}"
        )


def _check_term_contracts(names: Sequence[str]) -> None:
    """A weighted sum trains with one optimizer: its terms may name at most one between them,
    and a loss that must be trained alone (``composable=False``) is no term."""
    alone = sorted({n for n in names if not get_loss_info(n).composable})
    if alone:
        raise ValueError(
            f"Loss {alone[0]!r} cannot be a term of a weighted sum (it must be trained alone: "
            "its optimizer follows its own schedule); use it as the whole spec"
        )
    optimizers = {get_loss_info(n).optimizer: n for n in names if get_loss_info(n).optimizer}
    if len(optimizers) > 1:
        raise ValueError(
            "Expected the terms of a weighted-sum loss to need at most one optimizer between "
            "them but got " + ", ".join(f"{o!r} ({n})" for o, n in sorted(optimizers.items()))
        )


def _accepted_kwargs(cls: type[nn.Module]) -> frozenset[str]:
    params = inspect.signature(cls).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return _ANY
    return frozenset(p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


def _build(name: str, kwargs: dict[str, Any], stats: Mapping[str, Any] | None) -> nn.Module:
    info = get_loss_info(name)
    acc = _accepted_kwargs(info.cls)
    unknown = sorted(k for k in kwargs if acc is not _ANY and k not in acc)
    if unknown:
        raise ValueError(
            f"Expected keyword arguments of loss {name!r} to be among {sorted(acc)} but got "
            f"unknown {unknown}"
        )
    reduction = kwargs.get("reduction")
    if reduction is not None and reduction not in info.reductions:
        raise ValueError(
            f"Expected argument `reduction` of loss {name!r} to be one of {list(info.reductions)} "
            f"but got {reduction!r}"
            + (" (the loss is coupled across the batch)" if info.batch_coupled else "")
        )
    for key in info.needs:
        if key in kwargs:
            continue
        if (
            key == "num_classes"
            and (stats is None or stats.get(key) is None)
            and stats is not None
            and stats.get("class_counts") is not None
        ):
            kwargs[key] = len(stats["class_counts"])
            continue
        if stats is None or stats.get(key) is None:
            raise ValueError(
                f"Loss {name!r} needs the dataset statistic {key!r}: pass "
                f"create_loss(..., stats={{{key!r}: ...}}) (e.g. the training set's positives per "
                f"class for 'class_counts') or {key}=... directly; got stats keys "
                f"{sorted(stats) if stats else []}"
            )
        kwargs[key] = stats[key]
    return info.cls(**kwargs)


def _parse_spec(spec: Any) -> list[_Term]:
    if isinstance(spec, str):
        return _parse_string(spec)
    if isinstance(spec, Mapping):
        return [_parse_mapping(spec, spec)]
    if isinstance(spec, Sequence) and not isinstance(spec, bytes):
        if not spec:
            raise ValueError("Expected a non-empty list of loss mappings but got []")
        terms = []
        for item in spec:
            if not isinstance(item, Mapping):
                raise ValueError(
                    f"Expected each item of a loss list to be a mapping like {{'name': 'bce', "
                    f"'weight': 1.0}} but got {item!r}"
                )
            term = _parse_mapping(item, spec)
            terms.append(_Term(term.name, 1.0 if term.weight is None else term.weight, term.kwargs))
        return terms
    raise ValueError(
        "Expected loss spec to be a name, a weighted sum like 'bce+0.1*msml', a mapping or a "
        f"list of mappings but got {type(spec).__name__}: {spec!r}"
    )


def _parse_mapping(item: Mapping[str, Any], spec: Any) -> _Term:
    if "name" not in item:
        raise ValueError(f"Expected a 'name' key in loss mapping {dict(item)!r} (in spec {spec!r})")
    name = item["name"]
    _check_name(name, spec)
    weight = item.get("weight")
    if weight is not None:
        weight = _check_weight(weight, spec)
    kwargs = {k: v for k, v in item.items() if k not in ("name", "weight") and v is not None}
    return _Term(name, weight, kwargs)


def _parse_string(spec: str) -> list[_Term]:
    parts = _split_plus(spec)
    terms = []
    for part in parts:
        text = part.strip()
        if not text:
            raise ValueError(
                f"Expected loss spec {spec!r} to be names joined by '+', each optionally "
                "'weight*name', but got an empty term"
            )
        factors = [f.strip() for f in text.split("*")]
        if len(factors) == 1:
            _check_name(text, spec)
            terms.append(_Term(text, None if len(parts) == 1 else 1.0, {}))
            continue
        if len(factors) != 2 or not all(factors):
            raise ValueError(
                f"Expected each term of loss spec {spec!r} to be 'name' or 'weight*name' but "
                f"got {text!r}"
            )
        left, right = factors
        weight_text, name = (
            (right, left) if _is_number(right) and not _is_number(left) else (left, right)
        )
        _check_name(name, spec)
        terms.append(_Term(name, _check_weight(weight_text, spec), {}))
    return terms


def _split_plus(spec: str) -> list[str]:
    """Split at '+', except the sign of an exponent (``1e+3*msml``)."""
    parts, start = [], 0
    for i, ch in enumerate(spec):
        if ch != "+":
            continue
        tail = spec[start:i].rsplit("*", 1)[-1].strip()
        if tail[-1:] in ("e", "E") and _is_number(tail + "0"):
            continue
        parts.append(spec[start:i])
        start = i + 1
    parts.append(spec[start:])
    return parts


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_name(name: Any, spec: Any) -> None:
    if not isinstance(name, str) or _ALIASES.get(name, name) not in _REGISTRY:
        raise ValueError(
            f"Expected loss name to be one of {list_losses()} but got {name!r} (in spec {spec!r})"
        )


def _check_weight(weight: Any, spec: Any) -> float:
    try:
        value = float(weight)
        ok = not isinstance(weight, bool) and math.isfinite(value) and value >= 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"Expected loss weight to be a finite number >= 0 but got {weight!r} (in spec {spec!r})"
        )
    return value
