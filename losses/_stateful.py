"""Losses with state: the base class and the contract a training loop follows.

Most losses are functions of ``(logits, targets)``. A few carry state across steps:

- learnable parameters (AUC-M's per-class ``a``, ``b``), which an optimizer must update beside
  the model's, with the lr / weight-decay rule the loss declares;
- buffers that only their optimizer changes (AUC-M's dual variable ``α``, updated by PESG's
  closed-form ascent, never by a gradient step);
- a position in training, set through hooks: the epoch (SPLC starts correcting labels at
  ``change_epoch``) or the optimizer step (compositional AUC alternates its phases on an
  explicit step schedule, not on a count of its own calls).

The registry records what a loss needs (:class:`losses.LossInfo`: ``stateful``,
``optimizer``, ``needs_index``, ``param_lr``, ``param_weight_decay``, ``composable``);
:func:`training_contract` reads it off a built loss (a single loss or a weighted sum of terms)
so that a training loop can honour it without knowing any loss by name:

1. build the optimizer over the model's parameters plus :attr:`LossContract.param_groups`
   (each group's lr is ``lr_scale`` × the run's lr; the run's weight decay applies only where
   ``weight_decay`` is True), with :attr:`LossContract.optimizer` when it names one
   (:func:`losses.create_optimizer`), handing it :attr:`LossContract.dual_losses`;
2. move the loss with the model (``loss.to(device)``) and keep ``loss.state_dict()`` in every
   checkpoint it resumes from (``load_state_dict`` restores it; hook positions are part of it);
3. call :meth:`LossContract.on_epoch_start` before each training epoch and
   :meth:`LossContract.on_step_start` before each training step (global step index), and the
   optimizer's ``on_epoch_start`` / ``on_lr_decay`` hooks where it has them;
4. pass ``index=`` (the batch's sample indices into the training set, (B,) int64) to a loss
   whose contract ``needs_index``; evaluation passes none;
5. never call a hook in validation or test passes: a forward pass changes no state (every
   stateful loss here is a pure function of its inputs and its state; the state moves only
   through the hooks and the optimizer).

``mlbench.train.fit`` is that loop. This module imports nothing from mlbench.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor, nn

from ._common import check_reduction


class StatefulLoss(nn.Module):
    """Base of the losses whose module carries state (parameters, buffers, hook positions).

    The loss is still written once as a function, ``fn(logits, targets, *, <state>,
    <options>, reduction, validate)``, with its state passed explicitly (so the function is
    pure and checkable against a reference); the module owns the state and passes it:
    ``forward`` is ``fn(logits, targets, **self.loss_kwargs())``.

    Subclasses set:

    - ``fn``: the functional form (``class X(StatefulLoss, fn=x_loss)``);
    - ``state_names``: the keyword arguments of ``fn`` that :meth:`state_kwargs` supplies;
    - ``init_only``: keyword arguments of the module that ``fn`` does not take (sizes,
      optimizer options);

    and implement :meth:`state_kwargs` (and the hooks they use). The module's options are
    ``fn``'s remaining keyword arguments, with ``fn``'s defaults (checked by the generated
    tests). Hook positions (epoch, step) are plain ints kept in ``state_dict`` as extra state.
    """

    fn: ClassVar[Callable[..., Tensor]]
    state_names: ClassVar[tuple[str, ...]] = ()
    init_only: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, *, fn: Callable[..., Tensor] | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if fn is not None:
            cls.fn = staticmethod(fn)
        if getattr(cls, "fn", None) is not None:  # signature: init-only kwargs, then options
            own = [
                p
                for p in inspect.signature(cls.__init__).parameters.values()
                if p.kind is p.KEYWORD_ONLY
            ]
            if sorted(p.name for p in own) != sorted(cls.init_only):
                raise TypeError(
                    f"{cls.__name__}.init_only {list(cls.init_only)} must name the keyword "
                    f"arguments of its __init__ {[p.name for p in own]}"
                )
            cls.__signature__ = inspect.Signature(own + list(option_parameters(cls).values()))

    def __init__(self, **options: Any) -> None:
        super().__init__()
        params = option_parameters(type(self))
        unknown = sorted(set(options) - set(params))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword arguments {unknown}; expected "
                f"some of {sorted(params)}"
            )
        if "reduction" in options:
            check_reduction(options["reduction"])
        self.options: dict[str, Any] = {
            name: options.get(name, p.default) for name, p in params.items()
        }
        self.epoch = 0  # set by on_epoch_start; part of the extra state
        self.step = 0  # set by on_step_start; part of the extra state

    # ------------------------------------------------------------------ the function's inputs
    def state_kwargs(self) -> dict[str, Any]:
        """The state ``fn`` takes (``state_names``), as the module holds it now."""
        return {}

    def loss_kwargs(self) -> dict[str, Any]:
        """Everything ``forward`` passes to ``fn``: options and state."""
        return {**self.options, **self.state_kwargs()}

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return self.fn(logits, targets, **self.loss_kwargs())

    # ------------------------------------------------------------------ hooks
    def on_epoch_start(self, epoch: int) -> None:
        """Called by the training loop before training epoch ``epoch`` (0-based)."""
        self.epoch = int(epoch)

    def on_step_start(self, step: int) -> None:
        """Called by the training loop before training step ``step`` (0-based, global)."""
        self.step = int(step)

    def optimizer_options(self) -> dict[str, Any]:
        """Settings of the optimizer the loss names (:attr:`LossInfo.optimizer`), e.g. PESG's
        ``epoch_decay``: options of the loss, so they are part of its spec."""
        return {}

    def get_extra_state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "step": self.step}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.epoch, self.step = int(state["epoch"]), int(state["step"])

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())


def option_parameters(cls: type[StatefulLoss]) -> dict[str, inspect.Parameter]:
    """The options of a stateful loss: ``fn``'s keyword-only parameters minus its state."""
    return {
        p.name: p
        for p in inspect.signature(cls.fn).parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.name not in cls.state_names
    }


@dataclass(frozen=True)
class ParamGroup:
    """Parameters of a loss with the rule the loss declares for them."""

    params: tuple[nn.Parameter, ...]
    lr_scale: float  # lr of the group = lr_scale × the run's lr
    weight_decay: bool  # the run's weight decay applies (else 0)
    owner: str  # the loss's registered name (for messages)


@dataclass
class LossContract:
    """What a training loop must do for a built loss (see the module docstring).

    Attributes:
        stateful: the stateful modules of the loss (the loss itself or its terms), in order.
        optimizer: the optimizer the loss must be trained with ("" = the run's own).
        optimizer_options: its settings, from the loss(es) that name it.
        dual_losses: the modules the optimizer updates beyond gradient steps (AUC-M's dual
            variable); ``optimizer`` knows what to call on them.
        needs_index: the loss takes ``index=`` (sample indices) in training.
        param_groups: the loss's parameters with their lr / weight-decay rule.
        names: the registered names of the stateful terms.
    """

    stateful: list[nn.Module] = field(default_factory=list)
    optimizer: str = ""
    optimizer_options: dict[str, Any] = field(default_factory=dict)
    dual_losses: list[nn.Module] = field(default_factory=list)
    needs_index: bool = False
    param_groups: list[ParamGroup] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    @property
    def has_state(self) -> bool:
        return bool(self.stateful)

    def on_epoch_start(self, epoch: int) -> None:
        for module in self.stateful:
            module.on_epoch_start(epoch)

    def on_step_start(self, step: int) -> None:
        for module in self.stateful:
            module.on_step_start(step)


def training_contract(loss: Any) -> LossContract:
    """The :class:`LossContract` of a built loss (anything callable; plain functions and
    unregistered modules without parameters have an empty one).

    Raises:
        ValueError: an unregistered module with parameters (an optimizer would miss them, or
            the run would silently train another objective); terms naming different
            optimizers; a registered loss declaring no state while holding parameters.
    """
    from ._registry import WeightedSumLoss, info_for_module

    contract = LossContract()
    if not isinstance(loss, nn.Module):
        return contract
    terms = list(loss.terms) if isinstance(loss, WeightedSumLoss) else [loss]
    owners: dict[str, str] = {}
    for term in terms:
        info = info_for_module(term)
        if info is None:
            if any(True for _ in term.parameters()):
                raise ValueError(
                    f"Loss module {type(term).__name__} has parameters but is not a registered "
                    "loss declaring how to train them; register it with "
                    "register_loss(..., stateful=True) (see docs/ADD_A_LOSS.md)"
                )
            continue
        if not info.stateful:
            if any(True for _ in term.parameters()):
                raise ValueError(
                    f"Loss {info.name!r} has parameters but is registered with stateful=False"
                )
            if info.optimizer:
                owners.setdefault(info.optimizer, info.name)
            contract.needs_index |= info.needs_index
            continue
        contract.stateful.append(term)
        contract.names.append(info.name)
        contract.needs_index |= info.needs_index
        params = tuple(p for p in term.parameters() if p.requires_grad)
        if params:
            contract.param_groups.append(
                ParamGroup(params, info.param_lr, info.param_weight_decay, info.name)
            )
        if info.optimizer:
            owners.setdefault(info.optimizer, info.name)
            contract.dual_losses.append(term)
            options = term.optimizer_options() if isinstance(term, StatefulLoss) else {}
            for key, value in options.items():
                if contract.optimizer_options.setdefault(key, value) != value:
                    raise ValueError(
                        f"Expected the terms of a weighted-sum loss to agree on the "
                        f"{info.optimizer} option {key!r} but got "
                        f"{contract.optimizer_options[key]!r} and {value!r}"
                    )
    if len(owners) > 1:
        raise ValueError(
            "Expected the terms of a weighted-sum loss to need at most one optimizer but got "
            + ", ".join(f"{name!r} ({owner})" for name, owner in owners.items())
        )
    contract.optimizer = next(iter(owners), "")
    return contract
