"""Local BiRefNet weight folders: a registry spec for a folder holding a `model.safetensors`, with the
backbone read from its tensor shapes and the patch order (see models/birefnet.py) from its weights.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from models.birefnet import Backbone, image_tiles
from models.birefnet_zoo import CHECKPOINT_FILE, bare_key, birefnet_spec
from models.spec import ModelSpec, Preprocess, WeightsSource
from models.swin import SWIN_CONFIGS


# -- Patch order from the weights -------------------------------------------------------------------------
# The first conv of ipt_blk5..ipt_blk2 sees the image as a grid of tiles stacked on channels; each input
# channel is one colour of one tile, so every channel has a place (colour, tile row, tile column). Natural
# images are stationary: how two pixels co-vary depends on their colours and their offset, not on where
# they are. Training imprints that on the weights: the correlation between the weights of two input
# channels is then largely a function of (colour pair, row offset, column offset) under the true layout,
# and less so under the other one. The share of the channel-correlation variance explained by that
# function (R^2) is the statistic; benchmarks/patch_order_detector.py measures it on ipt_blk weights
# trained here in both orders. (Colour coherence, the correlation of a tile's R, G and B weights, does not
# separate the orders: it favours the legacy grouping whatever the true order, 0.59 vs 0.41 on weights
# trained in the current order; BENCHMARKS.md, "The BiRefNet zoo".)
DETECTOR_BLOCKS = ("ipt_blk5", "ipt_blk4", "ipt_blk3")  # ipt_blk2 has 48 channels: R^2 near its chance level
MIN_SIGNAL = 0.05  # R^2 above chance that a block must show before it counts as evidence
MIN_GAP = 0.2  # relative R^2 gap between the layouts that every block must show to decide


@dataclass(frozen=True)
class PatchOrderGuess:
    """What the ipt_blk weights say. `legacy_patch_order` None: undecided (random or untrained weights)."""

    legacy_patch_order: bool | None
    gap: float  # mean over DETECTOR_BLOCKS of (R2_current - R2_legacy) / (best R2 - chance): > 0 current
    r2: dict[str, tuple[float, float, float]]  # block -> (R2 current layout, R2 legacy layout, chance level)

    def describe(self) -> str:
        figures = ", ".join(f"{b} R2 {c:.3f}/{leg:.3f}" for b, (c, leg, _) in self.r2.items())
        verdict = {None: "undecided", True: "legacy", False: "current"}[self.legacy_patch_order]
        return f"{verdict} from the weights (gap {self.gap:+.2f}; current/legacy {figures})"


def channel_places(channels: int, legacy_order: bool) -> torch.Tensor:
    """(channels, 3): colour, tile row, tile column of each ipt_blk input channel, as image_tiles lays them."""
    tiles = channels // 3
    grid = math.isqrt(tiles)
    index = torch.arange(channels, dtype=torch.float64).reshape(1, 3, grid, grid)
    source = image_tiles(index, (1, 1), legacy_order).flatten().long()  # channel -> c * tiles + row * grid + col
    return torch.stack([source // tiles, source % tiles // grid, source % grid], dim=1)


def stationarity(weight: torch.Tensor, legacy_order: bool) -> tuple[float, float]:
    """(R^2, chance R^2) of the input-channel weight correlations explained by (colours, row and column offset)."""
    vectors = weight.detach().double().transpose(0, 1).flatten(1)
    vectors = vectors - vectors.mean(1, keepdim=True)
    vectors = vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
    correlation = vectors @ vectors.T
    places = channel_places(weight.shape[1], legacy_order)
    grid = int(places[:, 1].max()) + 1
    span = 2 * grid - 1
    colours = places[:, None, 0] * 3 + places[None, :, 0]
    rows = places[None, :, 1] - places[:, None, 1] + grid - 1
    cols = places[None, :, 2] - places[:, None, 2] + grid - 1
    off_diagonal = ~torch.eye(len(places), dtype=torch.bool)
    key = ((colours * span + rows) * span + cols)[off_diagonal]
    values = correlation[off_diagonal]
    counts = torch.bincount(key, minlength=9 * span * span).double()
    means = torch.bincount(key, weights=values, minlength=9 * span * span) / counts.clamp_min(1)
    residual = ((values - means[key]) ** 2).sum()
    total = ((values - values.mean()) ** 2).sum()
    chance = float((counts > 0).sum() - 1) / len(values)  # what group means explain in pure noise
    return float(1 - residual / total) if total > 0 else 0.0, chance


def guess_patch_order(ipt_weights: dict[str, torch.Tensor]) -> PatchOrderGuess:
    """The patch order that `{block: decoder.<block>.conv1.weight}` of DETECTOR_BLOCKS was trained with."""
    r2, gaps, decisive = {}, [], True
    for block in DETECTOR_BLOCKS:
        (current, chance), (legacy, _) = (stationarity(ipt_weights[block], order) for order in (False, True))
        r2[block] = (current, legacy, chance)
        signal = max(current, legacy) - chance
        gaps.append((current - legacy) / max(signal, MIN_SIGNAL))
        decisive &= signal >= MIN_SIGNAL and abs(gaps[-1]) >= MIN_GAP
    same_sign = all(g > 0 for g in gaps) or all(g < 0 for g in gaps)
    gap = sum(gaps) / len(gaps)
    return PatchOrderGuess(gap < 0 if decisive and same_sign else None, gap, r2)



# -- Local folders --------------------------------------------------------------------------------------------
def _backbone_of(shapes: dict[str, list[int]]) -> Backbone:
    """The Swin variant whose embedding width and stage-3 depth the checkpoint's tensors have."""
    embed = shapes["bb.patch_embed.proj.weight"][0]
    depth3 = len({k.split(".")[4] for k in shapes if k.startswith("bb.layers.2.blocks.")})
    for name, cfg in SWIN_CONFIGS.items():
        if cfg["embed_dim"] == embed and cfg["depths"][2] == depth3:
            return name  # type: ignore[return-value]
    raise ValueError(f"no supported Swin backbone with embed_dim={embed} and {depth3} blocks in stage 3")


def _size_from(config: dict) -> tuple[int, int] | None:
    """(height, width) from an `image_size` / `size` entry: an int, [h, w], or {"height", "width"}."""
    for key in ("image_size", "size"):
        value = config.get(key)
        if isinstance(value, int):
            return value, value
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return int(value[0]), int(value[1])
        if isinstance(value, dict) and {"height", "width"} <= value.keys():
            return int(value["height"]), int(value["width"])
    return None


# Cached per file version: registry.resolve() builds a folder's spec for every job that names it.
@lru_cache(maxsize=32)
def _backbone_in(weights: Path, mtime_ns: int) -> Backbone:
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        return _backbone_of({bare_key(key): f.get_slice(key).get_shape() for key in f.keys()})


@lru_cache(maxsize=32)
def _patch_order_in(weights: Path, mtime_ns: int) -> PatchOrderGuess:
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        stored = {bare_key(key): key for key in f.keys()}
        return guess_patch_order({block: f.get_tensor(stored[f"decoder.{block}.conv1.weight"])
                                  for block in DETECTOR_BLOCKS})


def read_patch_order(weights: Path) -> PatchOrderGuess:
    """What the ipt_blk weights of a BiRefNet model.safetensors say about its patch order."""
    weights = Path(weights)
    return _patch_order_in(weights, weights.stat().st_mtime_ns)


def spec_from_folder(folder: Path, legacy_patch_order: bool | None = None, name: str | None = None) -> ModelSpec:
    """A spec for a local folder holding a BiRefNet `model.safetensors` (and optionally its configs).

    The backbone comes from the tensor shapes. The published config.json files (RMBG-2.0 and all
    ZhengPeng7 repos) record only `_name_or_path`, `architectures`, `auto_map`, `custom_pipelines` and
    `bb_pretrained`, no input size; so the size is taken from an `image_size`/`size` entry of
    config.json or preprocessor_config.json (RMBG-2.0 publishes one with size 1024x1024) when present,
    else 1024x1024. The patch order, unless given, is read from the weights (`guess_patch_order`); where
    they do not tell, the current (einops) order of ZhengPeng7's code is taken, with a warning.
    """
    folder = Path(folder).expanduser().resolve()
    weights = folder / CHECKPOINT_FILE
    backbone = _backbone_in(weights, weights.stat().st_mtime_ns)
    if legacy_patch_order is not None:
        evidence = "given by the caller"
    elif (guess := read_patch_order(weights)).legacy_patch_order is not None:
        legacy_patch_order, evidence = guess.legacy_patch_order, guess.describe()
    else:
        legacy_patch_order, evidence = False, guess.describe() + "; current order assumed"
        warnings.warn(f"{folder}: the weights do not tell their patch order ({guess.describe()}); assuming the "
                      f"current order; name the folder's order explicitly if its matte looks wrong", stacklevel=2)
    size = None
    for config_name in ("config.json", "preprocessor_config.json"):
        path = folder / config_name
        if size is None and path.is_file():
            size = _size_from(json.loads(path.read_text()))
    size = size or (1024, 1024)
    return birefnet_spec(
        name or f"local:{folder}",
        backbone,
        legacy_patch_order,
        Preprocess(size=size, resample="bilinear", backend="torch"),
        # An absolute path: the registry joins it under WEIGHTS_DIR, which leaves it unchanged.
        WeightsSource(str(weights), file_format="safetensors"),
        f"local BiRefNet folder {folder} ({backbone}, {size[1]}x{size[0]})",
        evidence,
        licence="",
    )
