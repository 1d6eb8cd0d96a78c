"""Is CXR14-sim learnable but not trivial? Train a small CNN briefly, report per-class test AUC.

    python -m tools.sim_learnability --images 4000 --size 64 --epochs 8

Plain torch (no engine, no model registry) so that it checks the data alone; the AUCs are
``mlbench.stats.per_class_auc``. SPEC §3.2 asks for per-class AUCs spread over about
0.6-0.97: none trivially at 1.0, none at chance.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mlbench.data import FINDINGS, ChestXray14, generate_sim
from mlbench.stats import per_class_auc


def small_cnn(width: int = 16, classes: int = 14) -> nn.Sequential:
    """Four conv-BN-ReLU-pool stages, global average pool, linear head: (B, 1, S, S) -> (B, C)."""
    layers, c_in = [], 1
    for k in range(4):
        c_out = width * 2**k
        layers += [
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        ]
        layers += [nn.MaxPool2d(2)]
        c_in = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, classes))


def _tensors(ds: ChestXray14) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.stack([ds.image(i) for i in range(len(ds))]).float().div_(255.0)  # (N, 1, S, S)
    return (x - 0.5) / 0.25, torch.from_numpy(ds.labels)


def run(root: Path, size: int, epochs: int, width: int, seed: int) -> dict:
    torch.manual_seed(seed)
    x_tr, y_tr = _tensors(ChestXray14(root, "train_val", image_size=size, workers=1))
    x_te, y_te = _tensors(ChestXray14(root, "test", image_size=size, workers=1))
    model = small_cnn(width)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * ((len(x_tr) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    loss_fn = nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x_tr), generator=gen)
        total = 0.0
        for s in range(0, len(perm), 64):
            idx = perm[s : s + 64]
            loss = loss_fn(model(x_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{epochs} train loss {total / len(x_tr):.4f}", flush=True)
    model.eval()
    with torch.no_grad():
        scores = torch.cat([model(x_te[s : s + 256]).sigmoid() for s in range(0, len(x_te), 256)])
    auc = per_class_auc(y_te.numpy(), scores.numpy())
    return {
        "auc": auc,
        "positives": y_te.numpy().sum(0).astype(int),
        "n_train": len(x_tr),
        "n_test": len(x_te),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=4000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default=None, help="existing CXR14-sim folder (default: generate one)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root) if args.root else Path(tmp) / "sim"
        if not (root / "test_list.txt").exists():
            generate_sim(root, images=args.images, size=args.size, seed=args.seed, progress=False)
        t_gen = time.perf_counter() - t0
        res = run(root, args.size, args.epochs, args.width, args.seed)
    print(
        f"\n{res['n_train']} train / {res['n_test']} test images, {args.size}px; generate {t_gen:.1f} s"
    )
    print(f"{'finding':<20}{'test pos':>9}{'AUC':>8}")
    for name, n, a in zip(FINDINGS, res["positives"], res["auc"], strict=True):
        print(f"{name:<20}{n:>9}{a:>8.3f}")
    print(f"{'mean':<20}{'':>9}{np.nanmean(res['auc']):>8.3f}")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
