"""Image transforms for chest films (torchvision ``transforms.v2``).

Input: the dataset's uint8 image (1, H, W). Output: float32 (1, image_size, image_size),
normalised with the backbone's scalar grayscale mean/std (``model.norm_mean``/``norm_std``).
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2


def build_transforms(
    train: bool,
    image_size: int,
    mean: float,
    std: float,
    augment: bool = True,
    *,
    hflip: bool = False,
) -> v2.Compose:
    """Training or evaluation pipeline.

    Args:
        train: training pipeline (augmentation when ``augment``) or evaluation pipeline.
        image_size: output side in pixels.
        mean, std: grayscale normalisation on the [0, 1] scale.
        augment: random affine (small rotation, shift, scale) and brightness/contrast jitter.
        hflip: random horizontal flip; off by default because it moves the heart to the
            other side, which no real PA/AP film shows.
    """
    if std <= 0:
        raise ValueError(f"Expected argument `std` > 0 but got {std!r}")
    steps: list = [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]
    if train and augment:
        steps += [
            v2.RandomAffine(degrees=7, translate=(0.05, 0.05), scale=(0.92, 1.08)),
            v2.ColorJitter(brightness=0.15, contrast=0.15),
        ]
        if hflip:
            steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize([float(mean)], [float(std)])]
    return v2.Compose(steps)
