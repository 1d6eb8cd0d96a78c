"""train.sampler: class_aware (mlbench.train.ClassAwareSampler): a group (a finding's
positives, or the images with no finding) drawn uniformly, then a member uniformly; the order
depends on the generator's seed only (a resumed epoch sees the same batches)."""

from __future__ import annotations

import numpy as np
import torch

from mlbench.train import ClassAwareSampler, reseed_loader


def _labels(n=400, seed=0):
    rng = np.random.default_rng(seed)
    prevalence = np.array([0.3, 0.05, 0.01])
    return (rng.random((n, 3)) < prevalence).astype(np.float32)


def _reference(labels, generator, n):
    """The same draws, one at a time (the plain form of the sampler's vectorised one)."""
    y = labels > 0
    groups = [np.flatnonzero(y[:, c]) for c in range(y.shape[1])] + [np.flatnonzero(~y.any(1))]
    groups = [g for g in groups if len(g)]
    group = torch.randint(len(groups), (n,), generator=generator)
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return [int(groups[g][min(int(x * len(groups[g])), len(groups[g]) - 1)])
            for g, x in zip(group.tolist(), u.tolist(), strict=True)]


def test_class_aware_draws_equal_the_plain_reference():
    labels = _labels()
    got = list(ClassAwareSampler(labels, torch.Generator().manual_seed(3)))
    assert got == _reference(labels, torch.Generator().manual_seed(3), len(labels))


def test_every_group_is_drawn_about_equally_often():
    labels = _labels(n=2000)
    idx = np.array(list(ClassAwareSampler(labels, torch.Generator().manual_seed(0),
                                          num_samples=40000)))
    rare = labels[idx, 2].mean()  # 1% prevalence -> about 1/4 of the draws (4 groups)
    healthy = (labels[idx].sum(1) == 0).mean()
    assert 0.22 < rare < 0.30 and 0.22 < healthy < 0.30
    assert labels[:, 2].mean() < 0.02


def test_the_order_depends_on_the_seed_and_epoch_only():
    labels = _labels()
    gen = torch.Generator()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(labels)), batch_size=32,
        sampler=ClassAwareSampler(labels, gen), generator=gen)

    def epoch(e):
        reseed_loader(loader, 7, e)
        return [b[0] for b in loader]

    one, two, again = epoch(1), epoch(2), epoch(1)
    assert all(torch.equal(a, b) for a, b in zip(one, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(one, two, strict=True))
