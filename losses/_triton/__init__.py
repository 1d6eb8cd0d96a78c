"""Triton kernels for the losses package (optional: needs the ``triton`` package).

Kernels live apart from the loss modules that use them (Liger-Kernel layout): each
``<op>.py`` here holds the ``@triton.jit`` kernels, the host function and the
``torch.autograd.Function``. Import them lazily, after checking :func:`is_available`.
"""

from __future__ import annotations

__all__ = ["is_available"]


def is_available() -> bool:
    """Whether ``triton`` can be imported.

    Running a kernel still needs CUDA tensors, or ``TRITON_INTERPRET=1`` set before the
    kernel module is imported (then the kernels run on CPU tensors, slowly).
    """
    try:
        import triton  # noqa: F401
    except Exception:  # ImportError, or a broken install failing at import time
        return False
    return True
