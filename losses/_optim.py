"""The optimizers that AUC-maximisation losses name: PESG (AUC-M) and PDSCA (compositional AUC).

They live beside the losses, not in the harness, because they are part of the method: AUC-M's
dual variable α is maximised, not minimised, so a descent optimizer over ``.parameters()``
would train another objective; the loss names its optimizer in the registry
(``LossInfo.optimizer``) and :func:`create_optimizer` builds it from the name, so the
``losses`` package alone trains these losses correctly (``mlbench.train.fit`` uses it).

Both are written from the papers' algorithms and checked against LibAUC 2.0.1's
``libauc.optimizers.PESG`` / ``PDSCA`` (``tests/losses/test_auc_peers.py``), with these
deliberate differences:

- the reference point v_ref starts at the initial parameters v_0 (Algorithm 1 of Yuan et al.
  2021: "v_ref = v_0"); LibAUC draws it from N(0, 0.01²), which consumes the global torch RNG
  when the optimizer is built (and makes the proximal term pull towards noise in the first
  stage);
- the state (reference point, running sum, step count, momentum) is ordinary optimizer state:
  ``state_dict()`` / ``load_state_dict()`` round-trip it, so a resumed run is bit-identical;
- α's closed-form ascent runs once per step for every AUC loss given (LibAUC: once per
  parameter group, i.e. twice with two groups);
- weight decay is per parameter group (the harness puts none on biases, norm layers and the
  loss's a, b); LibAUC applies one weight decay to every parameter;
- only the "sgd" mode (LibAUC's PESG also has an Adam mode).

Kept from LibAUC on purpose (the authors' implementation of their method): the element-wise
gradient clamp ``clip_value``, the momentum form buf ← (1−β)·buf + β·d (β = ``momentum``; the
first step takes d), the running average of the iterates as the next reference point, and the
dual step α ← [α + η(2(m + b − a) − 2α)]₊ (the gradient of the v2 objective in α at the primal
optimum, where a and b equal the class means of the scores).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["LOSS_OPTIMIZERS", "PDSCA", "PESG", "create_optimizer"]


class PESG(torch.optim.Optimizer):
    """Proximal epoch stochastic gradient (Yuan et al., ICCV 2021, Algorithm 1).

    Per step, for every parameter v (the model's and the loss's a, b):
    d = clamp(∇v, ±clip_value) + epoch_decay·(v − v_ref) + weight_decay·v, then the momentum
    average of d (see the module docstring), v ← v − lr·d, and the running sum of the iterates
    is updated; then every AUC loss in ``dual_losses`` takes its dual step
    (``loss.dual_step(lr)``: α ← [α + lr(2(m + b − a) − 2α)]₊).

    Hooks (called by the training loop): :meth:`on_lr_decay` at each learning-rate decay
    sets v_ref to the average of the iterates since the previous one (LibAUC's
    ``update_regularizer``, which LibAUC#30 found essential); :meth:`on_epoch_start` does
    nothing (a stage is the span between decays).

    Args:
        params: parameters or parameter groups (a group may set its own ``weight_decay``).
        lr: learning rate (the training loop sets each group's ``lr`` every step).
        momentum: β of the momentum average (0 disables it).
        weight_decay: L2 penalty λ, per group.
        epoch_decay: strength of the proximal term towards v_ref (0 disables it).
        clip_value: element-wise gradient clamp (None disables it).
        dual_losses: the AUC losses whose dual variables this optimizer updates.
    """

    def __init__(
        self,
        params: Iterable[Any],
        *,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        epoch_decay: float = 2e-3,
        clip_value: float | None = 1.0,
        dual_losses: Sequence[nn.Module] = (),
    ) -> None:
        for name, value in (("lr", lr), ("weight_decay", weight_decay),
                            ("epoch_decay", epoch_decay)):  # fmt: skip
            if not value >= 0:
                raise ValueError(f"Expected `{name}` to be >= 0 but got {value}")
        if not 0 <= momentum < 1:
            raise ValueError(f"Expected `momentum` to be in [0, 1) but got {momentum}")
        if clip_value is not None and not clip_value > 0:
            raise ValueError(f"Expected `clip_value` to be > 0 or None but got {clip_value}")
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                    "epoch_decay": epoch_decay, "clip_value": clip_value, "stage_steps": 0}  # fmt: skip
        super().__init__(params, defaults)
        self.dual_losses = list(dual_losses)
        for loss in self.dual_losses:
            if not callable(getattr(loss, "dual_step", None)):
                raise ValueError(
                    f"Expected each of `dual_losses` to have a dual_step(lr) method but got "
                    f"{type(loss).__name__}"
                )
        for group in self.param_groups:  # v_ref = v_0 (no random draw), running sum 0
            if group["epoch_decay"] > 0:
                for p in group["params"]:
                    self.state[p]["ref"] = p.detach().clone()
                    self.state[p]["acc"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _direction(self, group: dict, p: Tensor) -> Tensor:
        """clamp(∇p) + epoch_decay·(p − ref) + weight_decay·p."""
        d = p.grad
        if group["clip_value"] is not None:
            d = d.clamp(-group["clip_value"], group["clip_value"])
        if group["epoch_decay"] > 0:
            d = d + group["epoch_decay"] * (p - self.state[p]["ref"])
        if group["weight_decay"] > 0:
            d = d + group["weight_decay"] * p
        return d

    @staticmethod
    def _average(state: dict, key: str, value: Tensor, beta: float) -> Tensor:
        """LibAUC's running average: the first value as is, then (1−β)·buf + β·value."""
        buf = state.get(key)
        if buf is None:
            buf = state[key] = value.detach().clone()
        else:
            buf.mul_(1 - beta).add_(value, alpha=beta)
        return buf

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        phase = self._phase()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                self._update(group, p, phase)
                if group["epoch_decay"] > 0:
                    self.state[p]["acc"].add_(p)
            group["stage_steps"] += 1
        if phase == "auc":
            lr = self.param_groups[0]["lr"]
            for dual in self.dual_losses:
                dual.dual_step(lr)
        return loss

    def _phase(self) -> str:
        """Every PESG step is a step of the AUC objective ("auc"), its dual step included."""
        return "auc"

    def _update(self, group: dict, p: Tensor, phase: str) -> None:
        """v ← v − lr·(momentum average of d)."""
        d = self._direction(group, p)
        if group["momentum"] != 0:
            d = self._average(self.state[p], "momentum_buffer", d, group["momentum"])
        p.sub_(group["lr"] * d)

    # ------------------------------------------------------------------ hooks
    def on_epoch_start(self, epoch: int) -> None:
        """Nothing: PESG's stages end at learning-rate decays (:meth:`on_lr_decay`)."""

    @torch.no_grad()
    def on_lr_decay(self) -> None:
        """v_ref ← the average of the iterates since the last decay; restart the average
        (LibAUC's ``update_regularizer``). Without steps since the last decay, nothing."""
        for group in self.param_groups:
            steps = group["stage_steps"]
            if group["epoch_decay"] > 0 and steps > 0:
                for p in group["params"]:
                    state = self.state[p]
                    state["ref"].copy_(state["acc"] / steps)
                    state["acc"].zero_()
            group["stage_steps"] = 0

    update_regularizer = on_lr_decay  # LibAUC's name


class PDSCA(PESG):
    """Primal-dual stochastic compositional adaptive method (Yuan et al., ICLR 2022) for
    compositional AUC, min L_AUC(w − η₀∇L_CE(w)).

    The loss (``compauc``) follows an explicit step schedule and tells the optimizer which
    phase the current step is in (``loss.phase()``: "ce" or "auc"):

    - a "ce" step is the inner gradient step: v ← v − η₀·d (η₀ = ``inner_lr_scale`` × lr, d as
      in PESG), then v ← the running average of the iterates (β₁, LibAUC's ``weight_buffer``);
    - an "auc" step is the outer step: v ← v − lr·(momentum average of d, β₂), then α's dual
      step.

    Hooks as :class:`PESG`.

    Args:
        params, lr, weight_decay, epoch_decay, clip_value: as :class:`PESG`.
        beta1: β₁ of the iterate average of the inner steps (0 disables it).
        beta2: β₂ of the momentum of the outer steps (0 disables it).
        inner_lr_scale: η₀ / lr (LibAUC's ``lr0``, which defaults to lr).
        dual_losses: exactly one compositional AUC loss.
    """

    def __init__(
        self,
        params: Iterable[Any],
        *,
        lr: float = 0.1,
        weight_decay: float = 0.0,
        epoch_decay: float = 2e-3,
        clip_value: float | None = 1.0,
        beta1: float = 0.99,
        beta2: float = 0.999,
        inner_lr_scale: float = 1.0,
        dual_losses: Sequence[nn.Module] = (),
    ) -> None:
        for name, value in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= value < 1:
                raise ValueError(f"Expected `{name}` to be in [0, 1) but got {value}")
        if not inner_lr_scale > 0:
            raise ValueError(f"Expected `inner_lr_scale` to be > 0 but got {inner_lr_scale}")
        if len(dual_losses) != 1 or not callable(getattr(dual_losses[0], "phase", None)):
            raise ValueError(
                "Expected PDSCA's `dual_losses` to be one compositional AUC loss (with a "
                f"phase() method) but got {[type(m).__name__ for m in dual_losses]}"
            )
        super().__init__(params, lr=lr, momentum=0.0, weight_decay=weight_decay,
                         epoch_decay=epoch_decay, clip_value=clip_value,
                         dual_losses=dual_losses)  # fmt: skip
        for group in self.param_groups:
            group.update(beta1=beta1, beta2=beta2, inner_lr_scale=inner_lr_scale)

    def _phase(self) -> str:
        return self.dual_losses[0].phase()

    def _update(self, group: dict, p: Tensor, phase: str) -> None:
        d = self._direction(group, p)
        state = self.state[p]
        if phase == "ce":
            p.sub_(group["inner_lr_scale"] * group["lr"] * d)
            if group["beta1"] != 0:
                p.copy_(self._average(state, "weight_buffer", p, group["beta1"]))
        else:
            if group["beta2"] != 0:
                d = self._average(state, "momentum_buffer", d, group["beta2"])
            p.sub_(group["lr"] * d)


# name -> class; options: the keyword arguments of the class besides params / lr / dual_losses
LOSS_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {"pesg": PESG, "pdsca": PDSCA}


def create_optimizer(
    name: str,
    param_groups: Sequence[dict],
    *,
    lr: float,
    momentum: float | None = None,
    dual_losses: Sequence[nn.Module] = (),
    **options: Any,
) -> torch.optim.Optimizer:
    """Build the optimizer a loss names (``LossInfo.optimizer``).

    Args:
        name: a key of :data:`LOSS_OPTIMIZERS`.
        param_groups: torch parameter groups (each with its ``weight_decay``).
        lr: the run's learning rate.
        momentum: the run's momentum (PESG only; PDSCA has β₁, β₂ instead).
        dual_losses: the losses whose dual variables the optimizer updates.
        **options: the optimizer's own settings (``LossContract.optimizer_options``).

    Raises:
        ValueError: unknown name or option.
    """
    if name not in LOSS_OPTIMIZERS:
        raise ValueError(
            f"Expected a loss optimizer to be one of {sorted(LOSS_OPTIMIZERS)} but got {name!r}"
        )
    cls = LOSS_OPTIMIZERS[name]
    import inspect

    accepted = set(inspect.signature(cls).parameters) - {"params", "lr", "dual_losses"}
    if momentum is not None and "momentum" in accepted:
        options = {"momentum": momentum, **options}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(
            f"Expected the options of optimizer {name!r} to be among {sorted(accepted)} but got "
            f"unknown {unknown}"
        )
    return cls(param_groups, lr=lr, dual_losses=dual_losses, **options)
