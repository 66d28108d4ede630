"""The published BiRefNet / RMBG-2.0 checkpoints: one registry entry each, with the Swin backbone, input
size, download pin and patch order (see models/birefnet.py) of each, and the evidence for that order.

The network is models/birefnet.py; local weight folders are read by models/birefnet_folder.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from models.birefnet import Backbone, BiRefNet, birefnet_matte
from models.spec import Download, ModelSpec, Preprocess, SizeRange, StateDict, WeightsSource

CHECKPOINT_FILE = "model.safetensors"
MIT = "MIT"
BRIA_LICENCE = "CC BY-NC 4.0 (BRIA; commercial use needs BRIA's licence)"
# BiRefNet_dynamic(-matting): trained on square-ish inputs from 256 to 2304 px (config.py dynamic_size
# ((512-256, 2048+256), ...) since GitHub f1dd163, 2025-03-10); any multiple of 32 in that range works.
DYNAMIC_SIZES = SizeRange(minimum=256, maximum=2304, multiple=32)
# Wrappers BiRefNet's train.py saves keys under (DDP's "module.", torch.compile's "_orig_mod.");
# its utils.check_state_dict strips them before loading.
TRAINING_PREFIXES = ("module.", "_orig_mod.")


def bare_key(key: str) -> str:
    """The key without DDP / torch.compile prefixes ('module._orig_mod.bb.…' -> 'bb.…')."""
    while key.startswith(TRAINING_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def strip_training_prefixes(state: StateDict, _model: nn.Module) -> StateDict:
    return {bare_key(key): value for key, value in state.items()}


@dataclass(frozen=True)
class Release:
    """One published checkpoint: where it is, what it was trained with, and why we believe so."""

    repo: str  # Hugging Face repo, also the registry name
    backbone: Backbone
    size: tuple[int, int]  # (height, width) it was trained at; the default input size
    legacy_patch_order: bool
    evidence: str  # why this patch order (dates against GitHub 5198d3f of 2024-11-05, code, file dtype)
    revision: str | None  # pinned commit of `repo` holding the file; None: none found yet (not fetchable)
    summary: str
    licence: str = MIT
    sha256: str | None = None  # of the file at `revision`, where a source states it
    filename: str = CHECKPOINT_FILE
    file_format: Literal["torch", "safetensors"] = "safetensors"
    size_range: SizeRange | None = None
    gated: bool = False  # the repo asks users to accept its licence before downloading (HF_TOKEN)


def birefnet_spec(
    name: str,
    backbone: Backbone,
    legacy_patch_order: bool,
    preprocess: Preprocess,
    weights: WeightsSource,
    notes: str,
    evidence: str,
    licence: str = MIT,
) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="birefnet",
        build=lambda: BiRefNet(backbone, legacy_patch_order),
        weights=weights,
        preprocess=preprocess,
        to_matte=birefnet_matte,
        remap_keys=strip_training_prefixes,
        default_foreground="blur_fusion",  # the model cards' refine_foreground
        licence=licence,
        notes=notes,
        extra={"backbone": backbone, "legacy_patch_order": legacy_patch_order, "patch_order_evidence": evidence},
    )


def _hub(release: Release) -> ModelSpec:
    order = "legacy (get_patches_batch)" if release.legacy_patch_order else "current (einops image2patches)"
    height, width = release.size
    sizes = (f"any multiple of {release.size_range.multiple} from {release.size_range.minimum} to "
             f"{release.size_range.maximum}, default {width}x{height}" if release.size_range else f"{width}x{height}")
    return birefnet_spec(
        release.repo,
        release.backbone,
        release.legacy_patch_order,
        Preprocess(size=release.size, resample="bilinear", backend="torch", size_range=release.size_range),
        WeightsSource(
            f"{release.repo}/{release.filename}",
            Download(release.repo, release.filename, revision=release.revision, sha256=release.sha256,
                     gated=release.gated),
            file_format=release.file_format,
        ),
        f"{release.summary} ({release.backbone}, input {sizes}); patch order {order}: {release.evidence}; "
        f"matte = sigmoid(logits)",
        release.evidence,
        release.licence,
    )


# The zoo: every checkpoint the BiRefNet authors publish on the Hugging Face hub in this architecture, RMBG-2.0,
# and the best-known fine-tunes in the same format. The patch order of each is the order of the code its
# weights were trained (or fine-tuned) with: ZhengPeng7's HF repos all ship the einops code today, but that
# says nothing about weights uploaded before GitHub commit 5198d3f (2024-11-05) switched the order.
# Dates are HF commit dates of model.safetensors unless said otherwise. Files stored in float16 are all of
# 2025 or later: the training code saves half-precision weights only since GitHub 8d5560d (2025-02-01).
ZOO = (
    Release("briaai/RMBG-2.0", "swin_v1_l", (1024, 1024), True,
            "the birefnet.py BRIA publishes with the weights, and loads them with, stacks tiles with "
            "Decoder.get_patches_batch",
            "94cba2d85601297da7332f9882f313bd339d1a1d",
            "BRIA RMBG-2.0 background removal (gated repo: needs HF_TOKEN)", licence=BRIA_LICENCE, gated=True),
    Release("ZhengPeng7/BiRefNet", "swin_v1_l", (1024, 1024), True,
            "model.safetensors of 2024-07 (HF bb4456a, BiRefNet-general-epoch_244, the general model whose "
            "training data includes portrait segmentation), before 2024-11-05",
            "d6b8eb4b58177931680caa666db6bd851001b6b7", "BiRefNet general use"),
    Release("ZhengPeng7/BiRefNet_lite", "swin_v1_t", (1024, 1024), True,
            "weights uploaded 2024-08-02 together with a birefnet.py (HF 224e902) that uses get_patches_batch",
            "aa62cd87eafb9cc43056d08ef3615a14628b831d", "BiRefNet lite, general use",
            sha256="4417d89795250e698c3cb0ae8df15743810065f646f48a694fdfa7ca052d0815"),
    Release("ZhengPeng7/BiRefNet_lite-2K", "swin_v1_t", (1440, 2560), True,
            "uploaded 2024-09-24 (HF 3007575; README news of that day), before 2024-11-05",
            "580b1256cd48294d77201a7b18c7dd81964969ab", "BiRefNet lite for 2560x1440 inputs"),
    Release("ZhengPeng7/BiRefNet-matting", "swin_v1_l", (1024, 1024), True,
            "uploaded 2024-10-06 (HF cd93244, float32), before 2024-11-05",
            "eccde0a8cbdce7ac5fecfeb06340fe7b949e85d9", "BiRefNet general trimap-free matting",
            sha256="a9875de5b1e6c8eb5fdaa8c727a82927ce442cdc87ba3abee6a77e6fa46c25bb"),
    Release("ZhengPeng7/BiRefNet-portrait", "swin_v1_l", (1024, 1024), True,
            "the pinned file was uploaded 2024-07-20 (HF 29b773a); main now holds its 'added mae loss' "
            "update (HF 47a0812, sha256 4a4eb3a5…), which HF's dates also place between 2024-07 and 2024-10: "
            "both before 2024-11-05",
            "29b773a2d23c0a17d3aee75216ccaa84b6315604", "BiRefNet portrait matting"),
    Release("ZhengPeng7/BiRefNet_HR", "swin_v1_l", (2048, 2048), False,
            "trained at 2048 in January 2025 and released 2025-02-01 (GitHub 8d5560d), after 2024-11-05; "
            "stored in float16",
            "a7a562f6fd16021180f2f4348f4de003a2d3d1e1", "BiRefNet HR, general use at high resolution",
            sha256="9d678bafec0b0019fbb073b7fd02f05ede25dc4b15254f23b2fb0be333200c0d"),
    Release("ZhengPeng7/BiRefNet_HR-matting", "swin_v1_l", (2048, 2048), False,
            "released 2025-02-12 (GitHub 52cc3ff), after 2024-11-05; stored in float16",
            "5d6b6f8adcb5b417c871b1d84ceaae9871355b7f", "BiRefNet HR matting",
            sha256="a5a4de698739ea5e0e8bbab28e1b293dde95092b87a442d566cbc585c53cef55"),
    Release("ZhengPeng7/BiRefNet_dynamic", "swin_v1_l", (1024, 1024), False,
            "released 2025-03-31 after dynamic-size training entered the code (GitHub f1dd163, 2025-03-10); "
            "stored in float16",
            "280306042f57b7a33854319da62fd86aaa89ec4c", "BiRefNet dynamic resolution, general use",
            sha256="e3d2e4884e51ff30f0cd630edc6b1e41b06b7f23a0a2a5169f7b7cb33a711c2d", size_range=DYNAMIC_SIZES),
    Release("ZhengPeng7/BiRefNet_dynamic-matting", "swin_v1_l", (1024, 1024), False,
            "uploaded 2025 (months after BiRefNet_dynamic; the official demo added it last); stored in float16",
            None, "BiRefNet dynamic resolution matting", size_range=DYNAMIC_SIZES),
    Release("ZhengPeng7/BiRefNet_512x512", "swin_v1_l", (512, 512), False,
            "uploaded 2025, after BiRefNet_HR (its model card compares with BiRefNet_HR-general-epoch_130); "
            "stored in float16",
            None, "BiRefNet trained at 512x512"),
    Release("ZhengPeng7/BiRefNet_lite-matting", "swin_v1_t", (1024, 1024), False,
            "weak: no upload date found; stored in float16 (about 85 MiB), which the training code writes only "
            "since 2025-02-01",
            "99c33412e3f58e1f33187abdc8c435c645243690", "BiRefNet lite matting"),
    Release("ZhengPeng7/BiRefNet-DIS5K", "swin_v1_l", (1024, 1024), True,
            "uploaded 2024-08-01 (HF 8584085), before 2024-11-05",
            "032e837020877028d8f4210dc1bd7371abdc7f98", "BiRefNet for dichotomous image segmentation (DIS5K)"),
    Release("ZhengPeng7/BiRefNet-HRSOD", "swin_v1_l", (1024, 1024), True,
            "uploaded 2024-08-01 (HF 9c64804), before 2024-11-05",
            "9c64804471c4266336c4b7638626e0301e04250d", "BiRefNet for high-resolution salient object detection"),
    Release("ZhengPeng7/BiRefNet-COD", "swin_v1_l", (1024, 1024), True,
            "on the hub by 2024-08-30 (named in GitHub ce28416's inference notebook), float32, before 2024-11-05",
            None, "BiRefNet for camouflaged object detection"),
    Release("ZhengPeng7/BiRefNet-DIS5K-TR_TEs", "swin_v1_l", (1024, 1024), True,
            "on the hub by 2024-08-30 (named in GitHub ce28416's inference notebook), float32, before 2024-11-05",
            None, "BiRefNet trained on DIS5K train and test sets ('massive')"),
    Release("ZhengPeng7/BiRefNet-legacy", "swin_v1_l", (1024, 1024), True,
            "BiRefNet-massive-epoch_240 uploaded 2024-05-13, converted to safetensors 2024-08-24 (HF 62fffc4); "
            "'legacy' names its training set (no portrait data), not the patch order",
            "fa9100bbce3b12638657facc624dcbcc33f236d8", "BiRefNet general use, without portrait data"),
    Release("joelseytre/toonout", "swin_v1_l", (1024, 1024), False,
            "fine-tuned for 100 epochs from BiRefNet-general-epoch_244 with MatteoKartoon/BiRefNet, a fork of "
            "ZhengPeng7's code of 2025-03-10 whose decoder uses image2patches; the authors' demo runs it in "
            "ZhengPeng7/BiRefNet's current HF code",
            "cbf720eca394edcde66b861a8a8c20fbabe9c748",
            "ToonOut: BiRefNet fine-tuned for anime and illustrations (torch.save file, keys under "
            "'module._orig_mod.')", licence="MIT (weights); training data CC BY 4.0",
            filename="birefnet_finetuned_toonout.pth", file_format="torch"),
    Release("egeorcun/lucida", "swin_v1_l", (1024, 1024), False,
            "fine-tuned from BiRefNet_HR-matting (current order) with a 2026 clone of ZhengPeng7/BiRefNet, "
            "whose decoder uses image2patches",
            "6cbedc9722652dc9a3df91dd871f0c4f3334e922",
            "Lucida: BiRefNet_HR fine-tune for glass, camouflage, text, glow and illustrations, trained at "
            "1024x1024", licence="MIT (weights); training data under mixed licences, see its README"),
)
CHECKPOINTS = [_hub(release) for release in ZOO]
