"""FBA Matting (Forte & Pitie 2020) as carvekit ships it: ResNet-50 GN+WS encoder, PPM decoder, F/B fusion.

Module names follow carvekit/ml/arch/fba_matting (FBA.encoder = ResnetDilated over l_resnet50,
FBA.decoder = fba_decoder), so the published `fba_matting.pth` loads unchanged.

The network takes four tensors at the same (H, W), H and W multiples of 8:
  image             [B,3,H,W] in [0,1], in the channel order the caller uses (carvekit feeds BGR)
  two_chan_trimap   [B,2,H,W] ch0 = definite background, ch1 = definite foreground
  image_n           [B,3,H,W] image normalised with ImageNet mean/std in that same channel order
  trimap_transformed [B,6,H,W] Gaussians of the distance to each known region
and returns [B,7,H,W] = (alpha, F rgb, B rgb) after FBA fusion. pipeline/carvekit/fba_matting.py builds the
inputs from an image and a trimap exactly as carvekit's FBAMatting wrapper does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.spec import Download, ModelSpec, Preprocess, WeightsSource


class WSConv2d(nn.Conv2d):
    """Conv2d with weight standardisation, as carvekit's layers_WS.Conv2d.

    The weight is centred per output channel (mean over in, kh, kw, taken one axis at a time as the
    original does) and divided by sqrt(unbiased var + 1e-12) + 1e-5.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        mean = weight.mean(dim=1, keepdim=True).mean(dim=2, keepdim=True).mean(dim=3, keepdim=True)
        weight = weight - mean
        std = torch.sqrt(torch.var(weight.reshape(weight.size(0), -1), dim=1) + 1e-12).view(-1, 1, 1, 1) + 1e-5
        return F.conv2d(x, weight / std, self.bias, self.stride, self.padding, self.dilation, self.groups)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels)


class Bottleneck(nn.Module):
    """ResNet-50 bottleneck with GN and WS convs; `dilation` applies to the 3x3 conv."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = WSConv2d(inplanes, planes, 1, bias=False)
        self.bn1 = group_norm(planes)
        self.conv2 = WSConv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = group_norm(planes)
        self.conv3 = WSConv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = group_norm(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def make_layer(inplanes: int, planes: int, blocks: int, stride: int, first_dilation: int,
               dilation: int) -> nn.Sequential:
    """One ResNet stage after carvekit's _nostride_dilate.

    In the dilated stages (output stride 8) the strided 3x3 conv of the first block loses its stride
    and gets dilation `first_dilation` (= dilate // 2), its 1x1 downsample loses its stride too, and
    every other 3x3 conv gets dilation `dilation`.
    """
    downsample = nn.Sequential(
        WSConv2d(inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
        group_norm(planes * Bottleneck.expansion),
    )
    layers = [Bottleneck(inplanes, planes, stride, first_dilation, downsample)]
    layers += [Bottleneck(planes * Bottleneck.expansion, planes, 1, dilation) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ResnetDilated(nn.Module):
    """ResNet-50 (GN, WS) with output stride 8 and an 11-channel stem; returns every stage's output."""

    def __init__(self, in_channels: int = 11):
        super().__init__()
        self.conv1 = WSConv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = group_norm(64)
        self.relu = nn.ReLU(inplace=True)
        # The original pools with return_indices=True, but the decoder never unpools.
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = make_layer(64, 64, 3, stride=1, first_dilation=1, dilation=1)
        self.layer2 = make_layer(256, 128, 4, stride=2, first_dilation=1, dilation=1)
        self.layer3 = make_layer(512, 256, 6, stride=1, first_dilation=1, dilation=2)
        self.layer4 = make_layer(1024, 512, 3, stride=1, first_dilation=2, dilation=4)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        conv_out = [x]
        x = self.relu(self.bn1(self.conv1(x)))
        conv_out.append(x)
        x = self.maxpool(x)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            conv_out.append(x)
        return conv_out


def fba_fusion(alpha: torch.Tensor, img: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor,
               la: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The paper's closed-form refinement of alpha, F and B against the compositing equation."""
    fg = alpha * img + (1 - alpha**2) * fg - alpha * (1 - alpha) * bg
    bg = (1 - alpha) * img + (2 * alpha - alpha**2) * bg - alpha * (1 - alpha) * fg
    fg = torch.clamp(fg, 0, 1)
    bg = torch.clamp(bg, 0, 1)
    alpha = (alpha * la + torch.sum((img - bg) * (fg - bg), 1, keepdim=True)) / (
        torch.sum((fg - bg) * (fg - bg), 1, keepdim=True) + la
    )
    return torch.clamp(alpha, 0, 1), fg, bg


def upsample2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class FBADecoder(nn.Module):
    """carvekit's fba_decoder for the GN encoder: PPM(1,2,3,6), three upsampling stages, 7-channel head."""

    def __init__(self, pool_scales: tuple[int, ...] = (1, 2, 3, 6)):
        super().__init__()
        self.ppm = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(scale), WSConv2d(2048, 256, 1), group_norm(256), nn.LeakyReLU())
            for scale in pool_scales
        )
        self.conv_up1 = nn.Sequential(
            WSConv2d(2048 + len(pool_scales) * 256, 256, 3, padding=1), group_norm(256), nn.LeakyReLU(),
            WSConv2d(256, 256, 3, padding=1), group_norm(256), nn.LeakyReLU(),
        )
        self.conv_up2 = nn.Sequential(WSConv2d(256 + 256, 256, 3, padding=1), group_norm(256), nn.LeakyReLU())
        self.conv_up3 = nn.Sequential(WSConv2d(256 + 64, 64, 3, padding=1), group_norm(64), nn.LeakyReLU())
        # The last stage uses plain convolutions (no weight standardisation, no norm).
        self.conv_up4 = nn.Sequential(
            nn.Conv2d(64 + 3 + 3 + 2, 32, 3, padding=1), nn.LeakyReLU(),
            nn.Conv2d(32, 16, 3, padding=1), nn.LeakyReLU(),
            nn.Conv2d(16, 7, 1),
        )

    def forward(self, conv_out: list[torch.Tensor], img: torch.Tensor, two_chan_trimap: torch.Tensor) -> torch.Tensor:
        conv5 = conv_out[-1]
        size = conv5.shape[2:]
        ppm_out = [conv5] + [
            F.interpolate(pool(conv5), size, mode="bilinear", align_corners=False) for pool in self.ppm
        ]
        x = self.conv_up1(torch.cat(ppm_out, 1))
        x = self.conv_up2(torch.cat((upsample2(x), conv_out[-4]), 1))
        x = self.conv_up3(torch.cat((upsample2(x), conv_out[-5]), 1))
        # Skip to full resolution: the normalised image (first 3 encoder input channels), the raw image, the trimap.
        x = torch.cat((upsample2(x), conv_out[-6][:, :3], img, two_chan_trimap), 1)
        output = self.conv_up4(x)
        alpha = torch.clamp(output[:, 0:1], 0, 1)
        fg = torch.sigmoid(output[:, 1:4])
        bg = torch.sigmoid(output[:, 4:7])
        alpha, fg, bg = fba_fusion(alpha, img, fg, bg)
        return torch.cat((alpha, fg, bg), 1)


class FBA(nn.Module):
    """FBA matting network (encoder resnet50_GN_WS) -> [B,7,H,W]: alpha, foreground, background."""

    def __init__(self):
        super().__init__()
        self.encoder = ResnetDilated(in_channels=3 + 6 + 2)
        self.decoder = FBADecoder()

    def forward(self, image: torch.Tensor, two_chan_trimap: torch.Tensor, image_n: torch.Tensor,
                trimap_transformed: torch.Tensor) -> torch.Tensor:
        conv_out = self.encoder(torch.cat((image_n, trimap_transformed, two_chan_trimap), 1))
        return self.decoder(conv_out, image, two_chan_trimap)


def fba_matte(output: torch.Tensor) -> torch.Tensor:
    return output[:, 0:1]


CHECKPOINTS = [
    ModelSpec(
        name="fba",
        family="fba",
        build=FBA,
        weights=WeightsSource("fba_matting.pth", Download(
            "Carve/fba", "fba_matting.pth", revision="a5d3457df0fb9c88ea19ed700d409756ca2069d1",
            sha512="890906ec94c1bfd2ad08707a63e4ccb0955d7f5d25e32853950c24c78"
                   "4cbad2e59be277999defc3754905d0f15aa75702cdead3cfe669ff72f08811c52971613")),
        # Closest fit only: the real input recipe (PIL BICUBIC thumbnail to fit 2048, BGR, Lanczos4
        # stretch to multiples of 8, trimap encodings) is pipeline/carvekit/fba_matting.py's fba_inputs.
        preprocess=Preprocess(size=(2048, 2048), resample="bicubic", backend="pil", scale="255"),
        to_matte=fba_matte,
        half_ok=False,
        role="matting",
        licence="MIT (FBA Matting)",
        notes="carvekit FBAMatting; needs a trimap: "
        "run through carvekit.fba_matting.fba_alpha, not the generic matte path",
    ),
]
