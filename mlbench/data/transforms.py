"""Image transforms for chest films (torchvision ``transforms.v2``).

Input: the dataset's uint8 image (1, H, W). Output: float32 (1, image_size, image_size),
normalised with the backbone's scalar grayscale mean/std (``model.norm_mean``/``norm_std``).

Training augmentation comes from a suite's ``train.augment``: ``true`` (the default recipe:
small affine + brightness/contrast jitter), ``false`` (none) or a mapping naming exactly what
is on (keys of ``mlbench.suite.schema.AUGMENT``; ``normalise_augment`` checks it).
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

# ``augment=True``: the recipe used before augmentation became a suite mapping (same steps).
DEFAULT_RECIPE = {"hflip": 0.0, "rotate": 7.0, "translate": 0.05, "scale": [0.92, 1.08],
                  "resized_crop": None, "brightness": 0.15, "contrast": 0.15,
                  "randaugment": None}


def augment_steps(image_size: int, augment: bool | dict) -> list:
    """The training steps of a recipe (``True``, ``False`` or an ``AUGMENT`` mapping), in
    order: geometry (random resized crop, else resize + centre crop; affine), intensity
    (brightness/contrast, RandAugment), then the horizontal flip."""
    if augment is True:
        augment = DEFAULT_RECIPE
    recipe = {"hflip": 0.0, "rotate": 0.0, "translate": 0.0, "scale": None,
              "resized_crop": None, "brightness": 0.0, "contrast": 0.0, "randaugment": None}
    if augment:
        unknown = sorted(set(augment) - set(recipe))
        if unknown:
            raise ValueError(f"Expected augmentation keys in {sorted(recipe)} but got {unknown}")
        recipe.update(augment)
    crop = recipe["resized_crop"]
    if crop:
        steps: list = [v2.RandomResizedCrop(image_size, scale=tuple(crop), antialias=True)]
    else:
        steps = [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]
    rotate, shift, scale = recipe["rotate"], recipe["translate"], recipe["scale"]
    if rotate or shift or scale:
        steps.append(v2.RandomAffine(degrees=rotate, translate=(shift, shift) if shift else None,
                                     scale=tuple(scale) if scale else None))
    if recipe["brightness"] or recipe["contrast"]:
        steps.append(v2.ColorJitter(brightness=recipe["brightness"] or None,
                                    contrast=recipe["contrast"] or None))
    ra = recipe["randaugment"]
    if ra:
        steps.append(v2.RandAugment(num_ops=ra.get("num_ops", 2), magnitude=ra.get("magnitude", 9)))
    hflip = 0.5 if recipe["hflip"] is True else float(recipe["hflip"] or 0.0)
    if hflip:
        steps.append(v2.RandomHorizontalFlip(p=hflip))
    return steps


def build_transforms(
    train: bool,
    image_size: int,
    mean: float,
    std: float,
    augment: bool | dict = True,
    *,
    hflip: bool = False,
) -> v2.Compose:
    """Training or evaluation pipeline.

    Args:
        train: training pipeline (augmentation when ``augment``) or evaluation pipeline.
        image_size: output side in pixels.
        mean, std: grayscale normalisation on the [0, 1] scale.
        augment: ``True``: random affine (rotation +-7 degrees, shift 5%, scale 0.92-1.08)
            and brightness/contrast jitter 0.15 (``DEFAULT_RECIPE``); ``False``: none; a
            mapping (``train.augment`` of a suite): hflip, rotate, translate, scale,
            resized_crop, brightness, contrast, randaugment, each off unless given.
        hflip: add a random horizontal flip (p 0.5) to the ``True`` recipe; off by default
            because it moves the heart to the other side, which no real PA/AP film shows
            (CheXNet trained with it nonetheless; a suite turns it on with ``hflip: 0.5``).
    """
    if std <= 0:
        raise ValueError(f"Expected argument `std` > 0 but got {std!r}")
    if train and augment:
        recipe = DEFAULT_RECIPE if augment is True else augment
        if hflip:
            recipe = {**recipe, "hflip": 0.5}
        steps = augment_steps(image_size, recipe)
    else:
        steps = [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize([float(mean)], [float(std)])]
    return v2.Compose(steps)
