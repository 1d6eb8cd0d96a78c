"""Fixtures for the MSML Triton kernel tests.

Where the kernels run:
* ``test_msml_interpreter.py`` runs them on CPU tensors under the Triton interpreter.
  ``TRITON_INTERPRET=1`` must be set before ``triton`` itself is imported (its standard
  library, ``tl.sum`` etc., is built at import), which no conftest can guarantee inside a
  shared pytest process — and setting it there would change ``triton`` for every other
  suite. So in a normal run that file is not collected here; ``test_msml_subprocess.py``
  runs it in a child pytest with the variable set. Run it directly with
  ``TRITON_INTERPRET=1 pytest tests/triton/test_msml_interpreter.py``.
* ``test_msml_compile.py`` builds cubin without a GPU (needs the compiled, not the
  interpreted, kernels) and ``test_msml_gpu.py`` runs on a CUDA device.
"""

from __future__ import annotations

import os

import pytest
import torch

pytest.importorskip(
    "triton", reason="triton is not installed: the MSML Triton kernel cannot be built or run"
)


def _interpreter_active() -> bool:
    """Whether triton was imported under TRITON_INTERPRET=1 (its own library interpreted)."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        return False
    import triton.language.standard as standard
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(standard.sum, InterpretedFunction)


INTERPRETER_ACTIVE = _interpreter_active()
INTERPRETER_TESTS = "test_msml_interpreter.py"


def pytest_ignore_collect(collection_path, config):
    if collection_path.name == INTERPRETER_TESTS and not INTERPRETER_ACTIVE:
        return True  # run by test_msml_subprocess.py instead
    return None


# Per logits dtype: (rtol, atol) of value and gradient against the fp32 references
# evaluated on the same (rounded) logits. fp32 differs only by summation order; the
# fp16/bf16 gradients are rounded once to the logits dtype.
TOLERANCES = {
    torch.float32: (1e-5, 1e-6),
    torch.float16: (2e-3, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-4),
}


@pytest.fixture(scope="session")
def kmod():
    """``losses._triton.msml`` (interpreted kernels in the interpreter run)."""
    from losses._triton import msml

    return msml


@pytest.fixture(scope="session")
def gpu_kmod(kmod):
    """``losses._triton.msml`` with compiled kernels and a CUDA device."""
    if not torch.cuda.is_available() or kmod.INTERPRETED:
        pytest.skip("needs a CUDA device (and TRITON_INTERPRET unset)")
    return kmod


def make_batch(
    B: int, C: int, *, dtype=torch.float32, device="cpu", seed: int = 0, p_pos: float = 0.3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (B, C) logits and bool targets; row 0 has no positives, row 1 no negatives."""
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(B, C, generator=gen) * 3).to(dtype)
    targets = torch.rand(B, C, generator=gen) < p_pos
    if B > 2:
        targets[0] = False
        targets[1] = True
    return logits.to(device), targets.to(device)


@pytest.fixture(scope="session")
def tolerances() -> dict:
    """logits dtype -> (rtol, atol)."""
    return TOLERANCES


@pytest.fixture(scope="session")
def batch():
    """The :func:`make_batch` factory."""
    return make_batch


@pytest.fixture(scope="session")
def references() -> dict:
    """name -> reference function(logits, targets, reduction): the PyTorch forms of losses.msml."""
    from losses.msml import msml_factorised, msml_naive

    return {"factorised": msml_factorised, "naive": msml_naive}


@pytest.fixture(scope="session")
def interpreter_active() -> bool:
    """Whether this process runs the kernels under the Triton interpreter."""
    return INTERPRETER_ACTIVE
