"""IS-Net (Qin et al. 2022, "Highly Accurate Dichotomous Image Segmentation"), module names of DIS's
IS-Net/models/isnet.py:ISNetDIS, which carvekit's carvekit/ml/arch/isnet copies unchanged.

IS-Net is U^2-Net's encoder/decoder of residual U-blocks behind a stride-2 input convolution, so the
blocks come from models/u2net.py. Two published checkpoints share the one layout: carvekit's
CarveSet fine-tune (carvekit's recipe) and DIS's isnet-general-use (rembg's recipe).
"""
from __future__ import annotations

import torch
from torch import nn

from models.spec import ByHand, Download, ModelSpec, Preprocess, WeightsSource
from models.u2net import RSUNet, min_max_matte, upsample_like

# (height, in, mid, out) of the six encoder and five decoder stages; height 0 is RSU-4F.
_ENCODER = [(7, 64, 32, 64), (6, 64, 32, 128), (5, 128, 64, 256), (4, 256, 128, 512), (0, 512, 256, 512), (0, 512, 256, 512)]
_DECODER = [(0, 1024, 256, 512), (4, 1024, 128, 256), (5, 512, 64, 128), (6, 256, 32, 64), (7, 128, 16, 64)]
# Input channels of side1..side6: stage1d..stage5d, then stage6.
_SIDE_IN = (64, 64, 128, 256, 512, 512)


class ISNetDIS(RSUNet):
    """IS-Net's segmentation network; forward returns sigmoid(d1), the only output used at inference.

    side2..side6 are deep-supervision heads of training: the published files hold them, so they are
    built (strict loading), but inference never runs them, as carvekit's forward does not.
    """

    def __init__(self, in_ch: int = 3, out_ch: int = 1):
        super().__init__()
        self.conv_in = nn.Conv2d(in_ch, 64, 3, stride=2, padding=1)
        # The original defines pool_in but its forward skips it (the call is commented out): stage1
        # runs at half the input resolution. MaxPool has no weights, so the module is not needed.
        self.build_stages(_ENCODER, _DECODER, list(_SIDE_IN), out_ch)

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """d1 before the sigmoid: side1 on the last decoder stage, upsampled to the input size."""
        return upsample_like(self.side1(self.encode_decode(self.conv_in(x))[-1]), x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward_logits(x))


# half_ok: matte vs float32, mean abs (max): oracle case 0 float16 3.3e-4 (2.0e-3), bfloat16 2.1e-3
# (1.3e-2); real isnet-general-use weights on car-1 at 1024x1024, float16 2.2e-5 (1.7e-3), IoU 0.99999,
# bfloat16 1.2e-4 (1.3e-2), IoU 0.99986.
CHECKPOINTS = [
    # carvekit's ISNet wrapper: its default file is the CarveSet fine-tune (isnet.pth in the same HF
    # repo is what ISNetDISPretrained loads; the same module takes either).
    ModelSpec(
        name="isnet",
        family="isnet",
        build=ISNetDIS,
        weights=WeightsSource("isnet-97-carveset.pth", Download(
            "Carve/isnet", "isnet-97-carveset.pth", revision="1339c55402b1c835020a987a2dd7a710a69dc129")),
        preprocess=Preprocess(size=(1024, 1024), mean=(0.5, 0.5, 0.5), std=(1.0, 1.0, 1.0),
                              resample="bicubic", backend="pil", scale="255"),
        to_matte=min_max_matte,
        notes="carvekit recipe: BICUBIC to 1024x1024, x/255, mean 0.5 std 1.0; matte = min-max of sigmoid(d1)",
        licence="Apache-2.0 (carvekit)",
    ),
    # DIS's general-use weights as rembg runs them. The reference file is a float16 rebuild with the
    # BatchNorms folded into the convolutions (BN left as identity); the loader casts it to the model
    # dtype. No HF repo publishes that exact file, so builder has no source for it.
    # rembg's isnet-general-use.onnx has SHA-256 60920e99c45464f2ba57bee2ad08c919a52bbf852739e96947fbb4358c0d964a
    # (as pinning projects list it); builder/ has no converter for IS-Net's ONNX yet.
    ModelSpec(
        name="isnet-general-use",
        family="isnet",
        build=ISNetDIS,
        weights=WeightsSource("isnet-general-use.pth",
                              sha256="98743127af289fb4b428e6a442b04cf28a9c8dafaae57106f15ab8a4b1147a96",
                              by_hand=ByHand("https://github.com/danielgatis/rembg/releases/download/v0.0.0/"
                                             "isnet-general-use.onnx, converted to IS-Net's state dict",
                                             "builder/ has no converter for IS-Net's ONNX yet")),
        preprocess=Preprocess(size=(1024, 1024), mean=(0.5, 0.5, 0.5), std=(1.0, 1.0, 1.0),
                              resample="lanczos", backend="pil", scale="max"),
        to_matte=min_max_matte,
        licence="Apache-2.0 (DIS, xuebinqin)",
        notes="rembg recipe: LANCZOS to 1024x1024, x/max(x), mean 0.5 std 1.0; matte = min-max of sigmoid(d1)",
    ),
]
