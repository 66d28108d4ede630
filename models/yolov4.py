"""YOLOv4 (Bochkovskiy et al. 2020) as carvekit ships it for its `auto` pipeline: the object detector
whose COCO classes decide which segmentation network a photo gets (pipeline/carvekit/auto_select.py).

Module names follow Tianxiaomo/pytorch-YOLOv4 models.py, the layout of carvekit's published
`yolov4_coco_with_classes.pth` (including the neck's misspelt key prefix `neek.`): a CSPDarknet53
backbone with Mish (down1..down5), an SPP + PAN neck with LeakyReLU(0.1), and a head whose three
1x1 `linear` convs (conv2, conv10, conv18) feed the YOLO layers at strides 8, 16 and 32.

In inference mode the network returns carvekit's `get_region_boxes` output: boxes [B,N,1,4] as
x1y1x2y2 relative to the input, and confs [B,N,classes] = sigmoid(objectness) * sigmoid(class);
the confidence threshold and per-class NMS are pipeline steps (pipeline/carvekit/auto_select.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.spec import Download, ModelSpec, Preprocess, WeightsSource

# The 80 class names of the published file's 'classes' list (darknet's coco.names spelling:
# "motorbike", "aeroplane", "sofa", ...), in the order of the network's class outputs. The loader
# keeps only the 'state' entry of the file, so the names travel with the spec.
COCO_CLASSES = (
    "person", "bicycle", "car", "motorbike", "aeroplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "sofa", "pottedplant", "bed",
    "diningtable", "toilet", "tvmonitor", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)

# Anchor (w, h) in input pixels; scale k uses anchors 3k..3k+2 at stride 8 * 2^k.
ANCHORS = ((12, 16), (19, 36), (40, 28), (36, 75), (76, 55), (72, 146), (142, 110), (192, 243), (459, 401))
STRIDES = (8, 16, 32)


class ConvBnAct(nn.Module):
    """Conv (bias only without BN) + BN + activation, kept in one `conv` list as the checkpoint keys it."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, activation: str, bn: bool = True):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, bias=not bn)]
        if bn:
            layers.append(nn.BatchNorm2d(out_ch))
        if activation == "mish":
            layers.append(nn.Mish())
        elif activation == "leaky":
            layers.append(nn.LeakyReLU(0.1))
        elif activation != "linear":
            raise ValueError(f"unknown activation {activation!r}")
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ResBlock(nn.Module):
    """`blocks` residual pairs (1x1 then 3x3, Mish), each added to its input."""

    def __init__(self, ch: int, blocks: int):
        super().__init__()
        self.module_list = nn.ModuleList(
            nn.Sequential(ConvBnAct(ch, ch, 1, 1, "mish"), ConvBnAct(ch, ch, 3, 1, "mish")) for _ in range(blocks)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for pair in self.module_list:
            x = x + pair(x)
        return x


class DownSample1(nn.Module):
    """The stem stage: its cross-stage split has a single residual unit with a 32-channel bottleneck."""

    def __init__(self):
        super().__init__()
        self.conv1 = ConvBnAct(3, 32, 3, 1, "mish")
        self.conv2 = ConvBnAct(32, 64, 3, 2, "mish")
        self.conv3 = ConvBnAct(64, 64, 1, 1, "mish")
        self.conv4 = ConvBnAct(64, 64, 1, 1, "mish")
        self.conv5 = ConvBnAct(64, 32, 1, 1, "mish")
        self.conv6 = ConvBnAct(32, 64, 3, 1, "mish")
        self.conv7 = ConvBnAct(64, 64, 1, 1, "mish")
        self.conv8 = ConvBnAct(128, 64, 1, 1, "mish")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = self.conv2(self.conv1(x))
        x3 = self.conv3(x2)
        x4 = self.conv4(x2)
        x6 = self.conv6(self.conv5(x4)) + x4
        return self.conv8(torch.cat([self.conv7(x6), x3], dim=1))


class CSPStage(nn.Module):
    """DownSample2..5: stride-2 conv, then a split whose one half runs `blocks` residual units."""

    def __init__(self, in_ch: int, out_ch: int, blocks: int):
        super().__init__()
        half = out_ch // 2
        self.conv1 = ConvBnAct(in_ch, out_ch, 3, 2, "mish")
        self.conv2 = ConvBnAct(out_ch, half, 1, 1, "mish")
        self.conv3 = ConvBnAct(out_ch, half, 1, 1, "mish")
        self.resblock = ResBlock(half, blocks)
        self.conv4 = ConvBnAct(half, half, 1, 1, "mish")
        self.conv5 = ConvBnAct(out_ch, out_ch, 1, 1, "mish")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        x4 = self.conv4(self.resblock(self.conv3(x1)))
        return self.conv5(torch.cat([x4, self.conv2(x1)], dim=1))


def upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    # The original repeats each pixel by the integer factor (view/expand); nearest is that copy.
    return F.interpolate(x, size=like.shape[2:], mode="nearest")


class Neck(nn.Module):
    """SPP on the stride-32 features, then a top-down path to strides 16 and 8 (all LeakyReLU)."""

    def __init__(self):
        super().__init__()
        self.conv1 = ConvBnAct(1024, 512, 1, 1, "leaky")
        self.conv2 = ConvBnAct(512, 1024, 3, 1, "leaky")
        self.conv3 = ConvBnAct(1024, 512, 1, 1, "leaky")
        self.maxpool1 = nn.MaxPool2d(5, 1, 2)
        self.maxpool2 = nn.MaxPool2d(9, 1, 4)
        self.maxpool3 = nn.MaxPool2d(13, 1, 6)
        self.conv4 = ConvBnAct(2048, 512, 1, 1, "leaky")
        self.conv5 = ConvBnAct(512, 1024, 3, 1, "leaky")
        self.conv6 = ConvBnAct(1024, 512, 1, 1, "leaky")
        self.conv7 = ConvBnAct(512, 256, 1, 1, "leaky")
        self.conv8 = ConvBnAct(512, 256, 1, 1, "leaky")
        self.conv9 = ConvBnAct(512, 256, 1, 1, "leaky")
        self.conv10 = ConvBnAct(256, 512, 3, 1, "leaky")
        self.conv11 = ConvBnAct(512, 256, 1, 1, "leaky")
        self.conv12 = ConvBnAct(256, 512, 3, 1, "leaky")
        self.conv13 = ConvBnAct(512, 256, 1, 1, "leaky")
        self.conv14 = ConvBnAct(256, 128, 1, 1, "leaky")
        self.conv15 = ConvBnAct(256, 128, 1, 1, "leaky")
        self.conv16 = ConvBnAct(256, 128, 1, 1, "leaky")
        self.conv17 = ConvBnAct(128, 256, 3, 1, "leaky")
        self.conv18 = ConvBnAct(256, 128, 1, 1, "leaky")
        self.conv19 = ConvBnAct(128, 256, 3, 1, "leaky")
        self.conv20 = ConvBnAct(256, 128, 1, 1, "leaky")

    def forward(
        self, d5: torch.Tensor, d4: torch.Tensor, d3: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x3 = self.conv3(self.conv2(self.conv1(d5)))
        spp = torch.cat([self.maxpool3(x3), self.maxpool2(x3), self.maxpool1(x3), x3], dim=1)
        x6 = self.conv6(self.conv5(self.conv4(spp)))
        x8 = torch.cat([self.conv8(d4), upsample_to(self.conv7(x6), d4)], dim=1)
        x13 = self.conv13(self.conv12(self.conv11(self.conv10(self.conv9(x8)))))
        x15 = torch.cat([self.conv15(d3), upsample_to(self.conv14(x13), d3)], dim=1)
        x20 = self.conv20(self.conv19(self.conv18(self.conv17(self.conv16(x15)))))
        return x20, x13, x6


class Head(nn.Module):
    """Bottom-up path from stride 8 to 32; conv2/conv10/conv18 are the raw YOLO maps per scale."""

    def __init__(self, out_ch: int):
        super().__init__()
        self.conv1 = ConvBnAct(128, 256, 3, 1, "leaky")
        self.conv2 = ConvBnAct(256, out_ch, 1, 1, "linear", bn=False)
        self.conv3 = ConvBnAct(128, 256, 3, 2, "leaky")
        self.conv4 = ConvBnAct(512, 256, 1, 1, "leaky")
        self.conv5 = ConvBnAct(256, 512, 3, 1, "leaky")
        self.conv6 = ConvBnAct(512, 256, 1, 1, "leaky")
        self.conv7 = ConvBnAct(256, 512, 3, 1, "leaky")
        self.conv8 = ConvBnAct(512, 256, 1, 1, "leaky")
        self.conv9 = ConvBnAct(256, 512, 3, 1, "leaky")
        self.conv10 = ConvBnAct(512, out_ch, 1, 1, "linear", bn=False)
        self.conv11 = ConvBnAct(256, 512, 3, 2, "leaky")
        self.conv12 = ConvBnAct(1024, 512, 1, 1, "leaky")
        self.conv13 = ConvBnAct(512, 1024, 3, 1, "leaky")
        self.conv14 = ConvBnAct(1024, 512, 1, 1, "leaky")
        self.conv15 = ConvBnAct(512, 1024, 3, 1, "leaky")
        self.conv16 = ConvBnAct(1024, 512, 1, 1, "leaky")
        self.conv17 = ConvBnAct(512, 1024, 3, 1, "leaky")
        self.conv18 = ConvBnAct(1024, out_ch, 1, 1, "linear", bn=False)

    def forward(
        self, x20: torch.Tensor, x13: torch.Tensor, x6: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        small = self.conv2(self.conv1(x20))
        x8 = self.conv8(self.conv7(self.conv6(self.conv5(self.conv4(torch.cat([self.conv3(x20), x13], dim=1))))))
        medium = self.conv10(self.conv9(x8))
        x11 = torch.cat([self.conv11(x8), x6], dim=1)
        large = self.conv18(self.conv17(self.conv16(self.conv15(self.conv14(self.conv13(self.conv12(x11)))))))
        return small, medium, large


def decode_scale(
    raw: torch.Tensor, anchors: tuple[tuple[int, int], ...], stride: int, classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One YOLO layer in eval mode (Tianxiaomo's yolo_forward_dynamic, scale_x_y = 1).

    raw [B, A*(5+classes), H, W] -> boxes [B, A*H*W, 1, 4] (x1y1x2y2 relative to the input, not
    clipped), confs [B, A*H*W, classes]; index order anchor, y, x. The operations keep the
    original's float32 order: centre = (sigmoid + cell) / W, size = exp * (anchor / stride) / W,
    x1 = centre - size/2 and x2 = x1 + size.
    """
    batch, _, height, width = raw.shape
    p = raw.view(batch, len(anchors), 5 + classes, height, width)
    # anchor / stride is computed in float64 by the original and then meets float32 tensors.
    scale = torch.tensor([[a / stride for a in anchor] for anchor in anchors], dtype=torch.float64)
    scale = scale.to(raw.dtype).to(raw.device).view(1, -1, 2, 1, 1)
    grid_x = torch.arange(width, device=raw.device, dtype=raw.dtype).view(1, 1, 1, width)
    grid_y = torch.arange(height, device=raw.device, dtype=raw.dtype).view(1, 1, height, 1)
    centre_x = (torch.sigmoid(p[:, :, 0]) + grid_x) / width
    centre_y = (torch.sigmoid(p[:, :, 1]) + grid_y) / height
    size = torch.exp(p[:, :, 2:4]) * scale
    size_w = size[:, :, 0] / width
    size_h = size[:, :, 1] / height
    x1 = centre_x - size_w * 0.5
    y1 = centre_y - size_h * 0.5
    boxes = torch.stack([x1, y1, x1 + size_w, y1 + size_h], dim=-1).reshape(batch, -1, 1, 4)
    objectness = torch.sigmoid(p[:, :, 4]).reshape(batch, -1, 1)
    class_probs = torch.sigmoid(p[:, :, 5:]).permute(0, 1, 3, 4, 2).reshape(batch, -1, classes)
    return boxes, class_probs * objectness


class Yolov4(nn.Module):
    def __init__(self, classes: int = len(COCO_CLASSES)):
        super().__init__()
        self.classes = classes
        self.down1 = DownSample1()
        self.down2 = CSPStage(64, 128, 2)
        self.down3 = CSPStage(128, 256, 8)
        self.down4 = CSPStage(256, 512, 8)
        self.down5 = CSPStage(512, 1024, 4)
        self.neek = Neck()
        self.head = Head((5 + classes) * 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [B,3,H,W] RGB in [0,1], H and W multiples of 32 -> (boxes [B,N,1,4], confs [B,N,classes])."""
        d3 = self.down3(self.down2(self.down1(x)))
        d4 = self.down4(d3)
        d5 = self.down5(d4)
        maps = self.head(*self.neek(d5, d4, d3))
        decoded = [
            decode_scale(raw, ANCHORS[3 * k : 3 * k + 3], STRIDES[k], self.classes) for k, raw in enumerate(maps)
        ]
        return torch.cat([b for b, _ in decoded], dim=1), torch.cat([c for _, c in decoded], dim=1)


CHECKPOINTS = [
    ModelSpec(
        name="yolov4",
        family="yolov4",
        build=Yolov4,
        weights=WeightsSource("yolov4_coco_with_classes.pth", Download(
            "Carve/yolov4_coco", "yolov4_coco_with_classes.pth", revision="e3fc9cd22f86e456d2749d1ae148400f2f950fb3",
            sha512="44b6ec2dd35dc3802bf8c512002f76e00e97bfbc86bc7af6de2fafce229a41b4ca"
                   "12c6f3d7589278c71cd4ddd62df80389b148c19b84fa03216905407a107fff"), wrap=("state",)),
        # carvekit: PIL resize to 608x608 with Pillow's default filter (bicubic for RGB), x/255, no mean/std.
        preprocess=Preprocess(size=(608, 608), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), resample="bicubic",
                              backend="pil", scale="255"),
        # Detections are thresholded at 0.4 and choose the segmentation network: carvekit's default
        # precision (float32) keeps those decisions.
        half_ok=False,
        role="classifier",
        notes="carvekit auto pipeline object detector; file is {'state': state_dict, 'classes': [80 names]}",
        licence="Apache-2.0 (carvekit); YOLOv4 weights: darknet's, public domain",
        extra={"classes": COCO_CLASSES},
    ),
]
