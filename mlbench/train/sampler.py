"""The class-aware sampler (``train.sampler: class_aware``).

At ChestX-ray14 prevalences (Hernia 0.2 %, Pneumonia 1.3 %) a uniformly shuffled batch of 32
lacks some finding almost always, and an AUC or pairwise loss then gets no signal for it
(mlbench's AUC losses give such a class 0, LibAUC's raise). Class-aware sampling (Shen et al.
2016, "Relay Backpropagation", the multi-label form LibAUC's samplers serve) draws each sample
by first drawing a group uniformly, then a member of it uniformly, with replacement: the
groups are the positives of each finding present in the split and the images with no finding
(so healthy films are drawn as often as any finding's). An epoch is ``len(dataset)`` draws.

The draws come from the generator given (the train loader's, reseeded per epoch from
(seed, epoch) by ``reseed_loader``), so an epoch's order depends on (seed, epoch) only and a
resumed run sees the same batches.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["SAMPLERS", "ClassAwareSampler"]

SAMPLERS = ("class_aware",)  # train.sampler; unset: a uniform shuffle


class ClassAwareSampler(torch.utils.data.Sampler[int]):
    """Indices drawn class-aware from multi-label ``labels`` (N, C) (see the module docstring).

    Args:
        labels: (N, C) 0/1 labels of the training split (the findings; a "No Finding" column
            is not needed: rows without a positive form their own group).
        generator: the torch generator the draws come from.
        num_samples: draws per epoch (default N).
    """

    def __init__(self, labels, generator: torch.Generator, num_samples: int | None = None):
        y = np.asarray(labels) > 0
        if y.ndim != 2 or len(y) == 0:
            raise ValueError(f"Expected labels (N, C) with N >= 1 but got shape {y.shape}")
        groups = [np.flatnonzero(y[:, c]) for c in range(y.shape[1])]
        groups.append(np.flatnonzero(~y.any(axis=1)))
        groups = [g for g in groups if len(g)]
        self.members = torch.from_numpy(np.concatenate(groups).astype(np.int64))
        self.sizes = torch.tensor([len(g) for g in groups], dtype=torch.int64)
        self.offsets = torch.cumsum(self.sizes, 0) - self.sizes
        self.generator = generator
        self.num_samples = len(y) if num_samples is None else int(num_samples)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self):
        n, g = self.num_samples, self.generator
        group = torch.randint(len(self.sizes), (n,), generator=g)
        within = (torch.rand(n, generator=g, dtype=torch.float64) * self.sizes[group]).long()
        within = torch.minimum(within, self.sizes[group] - 1)
        yield from self.members[self.offsets[group] + within].tolist()
