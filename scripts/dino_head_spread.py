#!/usr/bin/env python
"""How different are a fresh DINO model's outputs for different images? The diagnostic behind hfssl's
``use_bn_in_head`` default (docs/evaluation.md, "Measured: images").

    python scripts/dino_head_spread.py --data-dir ../shared/data --images 256

For a randomly initialized tiny ViT (28 px, Fashion-MNIST test images) with the DINO head, with and
without BatchNorm in the head, it prints for the pooled backbone features, the head's bottleneck and the
logits: the mean cosine similarity between two images and the per-unit std over the batch. When the
logits barely differ between images, the centered teacher targets are close to uniform and the student
learns a uniform output.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hfssl.data.images import fashion_mnist_dataset
from hfssl.data.pixels import normalize, to_float_pixels
from hfssl.models.configuration_hfssl_vision import HfsslVisionConfig
from hfssl.models.modeling_hfssl_vision_contrastive import (
    HfsslVisionForContrastiveLearning,
)


def spread(z: torch.Tensor) -> tuple[float, float]:
    """(n, d) -> (mean pairwise cosine over distinct rows, mean over units of the std over rows)."""
    unit = F.normalize(z, dim=-1)
    cosine = unit @ unit.T
    off_diagonal = cosine[~torch.eye(len(z), dtype=torch.bool)]
    return off_diagonal.mean().item(), z.std(dim=0).mean().item()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("HFSSL_DATA_DIR"), help="The shared data folder.")
    parser.add_argument("--images", type=int, default=256, help="Test images in the batch.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.data_dir or not (Path(args.data_dir) / "fashion_mnist").is_dir():
        raise SystemExit(f"No fashion_mnist folder under {args.data_dir!r}; pass --data-dir or set HFSSL_DATA_DIR.")
    data = fashion_mnist_dataset(Path(args.data_dir) / "fashion_mnist", split="test", limit=args.images)
    pixels = to_float_pixels(torch.from_numpy(np.stack([np.array(image) for image in data["image"]])).unsqueeze(1))
    pixels = normalize(pixels, [pixels.mean().item()], [pixels.std().item()])  # (n, 1, 28, 28)
    print(f"{'head':<22} {'stage':<11} {'mean cosine':>11} {'std over images':>16}")
    for use_bn in (False, True):
        torch.manual_seed(args.seed)
        config = HfsslVisionConfig.from_size(
            "tiny", image_size=28, num_channels=1, ssl={"method": "dino", "use_bn_in_head": use_bn}
        )
        model = HfsslVisionForContrastiveLearning(config).train()  # BatchNorm uses batch statistics
        head = model.ssl.student_head
        with torch.no_grad():
            features = model.model.forward_features(pixels)
            bottleneck = head.mlp(features)
            logits = head(features)
        name = f"use_bn_in_head={str(use_bn).lower()}"
        for stage, z in (("backbone", features), ("bottleneck", bottleneck), ("logits", logits)):
            cosine, std = spread(z)
            print(f"{name:<22} {stage:<11} {cosine:>11.3f} {std:>16.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
