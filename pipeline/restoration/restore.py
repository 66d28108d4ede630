"""GFPGANer.enhance (TencentARC/GFPGAN 7552a779, gfpgan/utils.py) with has_aligned=False, paste_back=True.

    read_image -> get_face_landmarks_5(only_center_face, eye_dist_threshold=5) -> align_warp_face
    -> each crop through GFPGAN: img2tensor(crop / 255., bgr2rgb) normalised by (0.5, 0.5), output
       tensor2img(rgb2bgr, min_max=(-1, 1)): clamp, (x + 1) / 2, * 255, round half to even, uint8
    -> background: bg_upsampler(img) (outscale = upscale) when given, resized to (h * upscale, w * upscale)
       with Lanczos-4 (a copy when it fits), else the input resized so
    -> get_inverse_affine(upscale) -> paste_faces_to_input_image (ParseNet mask, use_parse=True)

The networks are arguments: `restorer(x [B,3,512,512] in [-1, 1]) -> [B,3,512,512]` (GFPGAN v1.3/v1.4;
`weight` only matters to the original non-clean arch, which GFPGANer's 'clean' arch ignores) and
`parser(x [B,3,512,512] in [-1, 1])` returning ParseNet's 19-class logits, or a tuple whose first element
they are (ParseNet's (out_mask, out_img)). Images are uint8 RGB [3, H, W] tensors; the work happens on
their device. An image without faces comes back as the upsampled background (the background
upsampler's result, or the Lanczos-4 resize; unchanged at upscale 1), exactly as GFPGANer returns it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from pipeline.restoration.alignment import crop_face, estimate_affine_partial_lmeds, face_template, paste_affine
from pipeline.restoration.detection import DetectionParams, Faces, detect_faces, network_dtype
from pipeline.restoration.paste import FACE_SIZE, background, parse_mask, paste_faces, upscaled_size

Network = Callable[[torch.Tensor], object]
# image uint8 [3, H, W] -> uint8 [3, H', W'] about `upscale` times larger (e.g. Real-ESRGAN's enhance)
BackgroundUpsampler = Callable[[torch.Tensor, float], torch.Tensor]
Progress = Callable[[int, int], None]  # (faces done, faces found)


@dataclass(frozen=True)
class RestoreParams:
    """GFPGAN's inference_gfpgan.py defaults (-s 2, -w 0.5, no --only_center_face) and GFPGANer's helper."""

    upscale: float = 2.0  # the output is (h * upscale, w * upscale)
    only_center_face: bool = False
    weight: float = 0.5  # passed on by GFPGANer; GFPGANv1Clean ignores it
    use_parse: bool = True  # FaceRestoreHelper(use_parse=True): ParseNet's mask, else the square one
    batch_size: int = 4  # faces per restorer call (GFPGANer restores one at a time; batching is ours)
    detection: DetectionParams = field(default_factory=DetectionParams)

    def __post_init__(self) -> None:
        if not self.upscale >= 1:
            raise ValueError(f"upscale must be >= 1 (got {self.upscale})")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {self.batch_size})")


@dataclass(frozen=True)
class RestoreResult:
    image: torch.Tensor  # uint8 RGB [3, h * upscale, w * upscale]
    faces: Faces  # the faces restored, in input pixels
    cropped: torch.Tensor  # uint8 [n, 3, 512, 512] aligned crops
    restored: torch.Tensor  # uint8 [n, 3, 512, 512] restorer outputs

    @property
    def faces_found(self) -> int:
        return len(self.faces)


def restorer_input(crops: torch.Tensor) -> torch.Tensor:
    """uint8 RGB crops -> GFPGAN's input: float32((crop / 255.) in float64), then (x - 0.5) / 0.5 in float32."""
    return ((crops.double() / 255.0).float() - 0.5) / 0.5


def restorer_output(out: torch.Tensor) -> torch.Tensor:
    """basicsr tensor2img(min_max=(-1, 1)) in float32: clamp, (x + 1) / 2, * 255, round half to even -> uint8."""
    x = (out.float().clamp(-1, 1) + 1) / 2
    return torch.round(x * 255.0).to(torch.uint8)


def parser_input(faces: torch.Tensor) -> torch.Tensor:
    """uint8 RGB faces -> ParseNet's input: float32 / 255, then (x - 0.5) / 0.5 (paste_faces_to_input_image)."""
    return (faces.float() / 255.0 - 0.5) / 0.5


def _batched(network: Network, x: torch.Tensor, batch_size: int):
    """The network's output for each batch of `x`, in its parameters' dtype, lazily."""
    dtype = network_dtype(network)
    for start in range(0, len(x), batch_size):
        with torch.inference_mode():
            yield network(x[start:start + batch_size].to(dtype))


def _parse(parser: Network, faces: torch.Tensor, batch_size: int) -> torch.Tensor:
    """ParseNet's argmax per face: [n, 512, 512]."""
    parts = []
    for out in _batched(parser, parser_input(faces), batch_size):
        logits = out[0] if isinstance(out, (tuple, list)) else out
        parts.append(logits.float().argmax(dim=1))
    return torch.cat(parts)


def restore(image: torch.Tensor, detector: nn.Module, restorer: Network, parser: Network | None = None,
            params: RestoreParams = RestoreParams(), background_upsampler: BackgroundUpsampler | None = None,
            progress: Progress | None = None) -> RestoreResult:
    """GFPGANer.enhance(img, has_aligned=False, only_center_face, paste_back=True, weight) on uint8 RGB
    [3, H, W]. `parser` is required when params.use_parse. `progress(i, n)` is called after each batch
    of faces has been restored (i faces of n done) and once with (0, 0) when there is none."""
    if params.use_parse and parser is None:
        raise ValueError("use_parse needs the ParseNet parser")
    height, width = image.shape[-2:]
    size = upscaled_size(height, width, params.upscale)
    faces = detect_faces(detector, image, params.detection, params.only_center_face)
    affines, kept = [], []
    template = face_template(FACE_SIZE)
    for i in range(len(faces)):
        affine = estimate_affine_partial_lmeds(faces.landmarks[i], template)
        if affine is not None:  # OpenCV returns no matrix when LMEDS finds < 2 inliers; facexlib would crash
            affines.append(affine)
            kept.append(i)
    faces = faces.select(kept)
    empty = torch.empty((0, 3, FACE_SIZE, FACE_SIZE), dtype=torch.uint8, device=image.device)
    cropped = torch.stack([crop_face(image, a, FACE_SIZE) for a in affines]) if affines else empty
    restored_parts, done = [], 0
    for out in _batched(restorer, restorer_input(cropped), params.batch_size):
        restored_parts.append(restorer_output(out))
        done += len(restored_parts[-1])
        if progress is not None:
            progress(done, len(cropped))
    if progress is not None and not len(cropped):
        progress(0, 0)
    restored = torch.cat(restored_parts) if restored_parts else empty
    upsampled = image if background_upsampler is None else background_upsampler(image, params.upscale)
    upsampled = background(upsampled, size)
    if not len(restored):
        return RestoreResult(upsampled, faces, cropped, restored)
    matrices = torch.stack([paste_affine(a, params.upscale) for a in affines])
    masks = None
    if params.use_parse:
        masks = torch.stack([parse_mask(p) for p in _parse(parser, restored, params.batch_size)])
    pasted = paste_faces(upsampled, restored, matrices, masks, params.upscale)
    return RestoreResult(pasted, faces, cropped, restored)
