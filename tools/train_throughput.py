"""Training throughput of the engine's loop against a bare PyTorch loop.

    python -m tools.train_throughput --backbone resnet18 --head bilinear --size 64

Both loops train the same model on the same in-memory data with the same optimizer
(AdamW), batch size and number of steps; the engine's loop is
:func:`mlbench.train.train_one_epoch` (per-step LR schedule, device-side loss accumulation,
NaN check every ``nan_check_every`` steps). The two are interleaved and repeated and the
median images/s of each is reported, so that load from other processes on the machine hits
both alike. ``--fit`` also runs a short ``fit`` + ``evaluate`` end to end.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from mlbench.models import build_model
from mlbench.train import TrainConfig, build_optimizer, evaluate, fit, train_one_epoch


def bare_loop(model, loader, optimizer, steps: int) -> None:
    """The reference: nothing but forward, loss, backward, step."""
    model.train()
    for i, (x, y) in enumerate(loader):
        if i >= steps:
            break
        optimizer.zero_grad(set_to_none=True)
        F.binary_cross_entropy_with_logits(model(x), y).backward()
        optimizer.step()


def measure(args) -> dict:
    g = torch.Generator().manual_seed(0)
    n = args.batch * args.steps
    x = torch.randn(n, 1, args.size, args.size, generator=g)
    y = (torch.rand(n, args.classes, generator=g) < 0.2).float()
    loader = DataLoader(TensorDataset(x, y), batch_size=args.batch, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = build_model(args.backbone, args.head, num_classes=args.classes)
    # constant LR so both loops do the same arithmetic (lr_at still runs every step)
    cfg = TrainConfig(epochs=1, max_steps_per_epoch=args.steps, schedule="constant")
    opt = build_optimizer(model, cfg)
    loops = {
        "bare": lambda: bare_loop(model, loader, opt, args.steps),
        "engine": lambda: train_one_epoch(model, F.binary_cross_entropy_with_logits, loader,
                                          opt, "cpu", 0, cfg),
    }
    bare_loop(model, loader, opt, 2)  # warm-up (allocator, first-call overheads)
    # every timed pass starts from the same weights and optimizer state: same work for both
    start = copy.deepcopy((model.state_dict(), opt.state_dict()))
    # wall-clock images/s, and images per CPU-second of this process (insensitive to other
    # processes taking the cores; meaningful with one intra-op thread)
    wall: dict[str, list[float]] = {k: [] for k in loops}
    cpu: dict[str, list[float]] = {k: [] for k in loops}
    for r in range(args.repeats):
        order = list(loops) if r % 2 == 0 else list(reversed(loops))  # interleave
        for name in order:
            model.load_state_dict(start[0])
            opt.load_state_dict(start[1])
            t0, c0 = time.perf_counter(), time.process_time()
            loops[name]()
            wall[name].append(n / (time.perf_counter() - t0))
            cpu[name].append(n / (time.process_time() - c0))

    def overhead(rates):  # median over repeats of the paired slow-down, in %
        return round(100 * statistics.median(b / e - 1 for b, e in zip(rates["bare"], rates["engine"], strict=True)), 2)

    return {
        "model": f"{args.backbone}+{args.head}", "size": args.size, "batch": args.batch,
        "steps": args.steps, "repeats": args.repeats, "threads": torch.get_num_threads(),
        "bare_img_s": round(statistics.median(wall["bare"]), 2),
        "engine_img_s": round(statistics.median(wall["engine"]), 2),
        "overhead_pct_wall": overhead(wall),
        "bare_img_per_cpu_s": round(statistics.median(cpu["bare"]), 2),
        "engine_img_per_cpu_s": round(statistics.median(cpu["engine"]), 2),
        "overhead_pct_cpu": overhead(cpu),
        "bare_all": [round(v, 2) for v in wall["bare"]],
        "engine_all": [round(v, 2) for v in wall["engine"]],
    }


def short_fit(args) -> dict:
    """A few steps of fit + evaluate on random data: that the model trains and evaluates."""
    g = torch.Generator().manual_seed(1)
    n = args.batch * args.steps
    x = torch.randn(n, 1, args.size, args.size, generator=g)
    y = (torch.rand(n, args.classes, generator=g) < 0.3).float()
    loader = DataLoader(TensorDataset(x, y), batch_size=args.batch)
    torch.manual_seed(0)
    model = build_model(args.backbone, args.head, num_classes=args.classes)
    t0 = time.perf_counter()
    res = fit(model, F.binary_cross_entropy_with_logits, loader, loader,
              TrainConfig(epochs=1, max_steps_per_epoch=args.steps))
    out = evaluate(model, loader, "cpu", F.binary_cross_entropy_with_logits)
    return {"model": f"{args.backbone}+{args.head}", "status": res.status,
            "train_loss": round(res.history[0]["train_loss"], 4), "eval_loss": round(out["loss"], 4),
            "scores_shape": list(out["scores"].shape), "seconds": round(time.perf_counter() - t0, 2)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--head", default="bilinear")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--classes", type=int, default=14)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--fit", action="store_true", help="run a short fit + evaluate instead")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(json.dumps(short_fit(args) if args.fit else measure(args)))


if __name__ == "__main__":
    main()
