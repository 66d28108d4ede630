"""FaceRestoreHelper.paste_faces_to_input_image (facexlib 260620ae) in torch on the image's device.

The background is the input (or the background upsampler's output) resized to (h * upscale,
w * upscale) with cv2's Lanczos-4 (a copy when the size already fits). Each restored 512 face is warped
back with its paste matrix (imaging.warp, bilinear, black outside) and blended through a soft mask:
  parsing (use_parse=True, GFPGANer's setting): ParseNet's argmax -> MASK_COLORMAP (skin, brows, eyes,
    ears, nose, mouth, lips, neck... 255; background, hair, hat, cloth and earrings 0) ->
    GaussianBlur (101, 101) sigma 11 twice -> a 10 px black frame -> / 255 -> warped back with the same
    matrix (float64, OpenCV's fixed-point path); blend = m * face + (1 - m) * background in float64.
  no parsing: a 512 square of ones warped back (float32), eroded by a (2 upscale)^2 square, its area
    giving w_edge = int(sqrt(area)) // 20, eroded again by 2 w_edge, blurred by (2 w_edge + 1)^2 with
    sigma 0; the face is multiplied by the first erosion; blend in float32.
Faces are blended one after the other into the same float image, which is truncated (not rounded) to
uint8 at the end, as numpy's astype. Only the window each face can reach is computed: outside it the
mask is exactly 0 and the blend leaves the background unchanged.
"""
from __future__ import annotations

import math

import torch

from imaging.filters import erode, gaussian_blur
from imaging.resample import cv2_resize_lanczos4
from imaging.warp import warp_affine

# facexlib's MASK_COLORMAP over ParseNet's 19 classes (CelebAMask-HQ order)
MASK_COLORMAP = (0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 255, 0, 0, 0)
PARSE_BLUR_SIZE, PARSE_BLUR_SIGMA = 101, 11.0
PARSE_FRAME = 10  # pixels zeroed at each edge of the blurred mask ("remove the black borders")
FACE_SIZE = 512


def upscaled_size(height: int, width: int, upscale: float) -> tuple[int, int]:
    return int(height * upscale), int(width * upscale)


def background(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """cv2.resize(image, (w_up, h_up), INTER_LANCZOS4) of uint8 [3, H, W] (a copy when it fits)."""
    return cv2_resize_lanczos4(image, size)


def parse_mask(parsing: torch.Tensor) -> torch.Tensor:
    """ParseNet's argmax [512, 512] -> facexlib's soft face mask in [0, 1], float64 [512, 512]."""
    colours = torch.tensor(MASK_COLORMAP, dtype=torch.float64, device=parsing.device)[parsing.long()]
    mask = gaussian_blur(gaussian_blur(colours, PARSE_BLUR_SIZE, PARSE_BLUR_SIGMA), PARSE_BLUR_SIZE, PARSE_BLUR_SIGMA)
    mask[:PARSE_FRAME] = 0
    mask[-PARSE_FRAME:] = 0
    mask[:, :PARSE_FRAME] = 0
    mask[:, -PARSE_FRAME:] = 0
    return mask / 255.0


def _reach(matrix: torch.Tensor, face_size: int, size: tuple[int, int], margin: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the destination pixels whose source lies within one pixel of the
    face, plus `margin`, clipped to the destination."""
    corners = torch.tensor([[-1.0, -1.0, 1.0], [face_size, -1.0, 1.0], [-1.0, face_size, 1.0],
                            [face_size, face_size, 1.0]], dtype=torch.float64)
    points = corners @ matrix.double().cpu().T
    left, top = (math.floor(v) - margin for v in points.min(0).values.tolist())
    right, bottom = (math.ceil(v) + 1 + margin for v in points.max(0).values.tolist())
    height, width = size
    top, left = max(top, 0), max(left, 0)
    return top, max(min(bottom, height), top), left, max(min(right, width), left)


def _paste_parsed(canvas: torch.Tensor, face: torch.Tensor, mask: torch.Tensor, matrix: torch.Tensor) -> None:
    size = canvas.shape[-2:]
    region = _reach(matrix, face.shape[-1], size, margin=2)
    top, bottom, left, right = region
    if top == bottom or left == right:
        return
    warped_face = warp_affine(face, matrix, size, 0.0, region).double()
    warped_mask = warp_affine(mask[None], matrix, size, 0.0, region)
    window = canvas[:, top:bottom, left:right]
    canvas[:, top:bottom, left:right] = warped_mask * warped_face + (1 - warped_mask) * window


def _paste_square(canvas: torch.Tensor, face: torch.Tensor, matrix: torch.Tensor, upscale: float) -> None:
    size = canvas.shape[-2:]
    face_size = face.shape[-1]
    # w_edge <= sqrt(area) / 20 and the area is at most the face's footprint: enough margin for the
    # erosions and the blur to see the zeros around the face, as on the whole image
    footprint = abs(float(torch.det(matrix[:, :2].double()))) * face_size**2
    margin = 4 * (int(math.sqrt(footprint)) // 20) + int(2 * upscale) + 4
    region = _reach(matrix, face_size, size, margin)
    top, bottom, left, right = region
    if top == bottom or left == right:
        return
    ones = torch.ones((1, face_size, face_size), dtype=torch.float32, device=face.device)
    inv_mask = warp_affine(ones, matrix, size, 0.0, region)[0]
    inv_mask_erosion = erode(inv_mask, int(2 * upscale))
    pasted_face = inv_mask_erosion * warp_affine(face, matrix, size, 0.0, region)
    w_edge = int(float(inv_mask_erosion.double().sum()) ** 0.5) // 20
    inv_mask_center = erode(inv_mask_erosion, w_edge * 2)
    soft = gaussian_blur(inv_mask_center, w_edge * 2 + 1, 0)
    window = canvas[:, top:bottom, left:right]
    canvas[:, top:bottom, left:right] = soft * pasted_face + (1 - soft) * window


def paste_faces(upsampled: torch.Tensor, faces: torch.Tensor, matrices: torch.Tensor, masks: torch.Tensor | None,
                upscale: float) -> torch.Tensor:
    """Blend restored faces into the upsampled background.

    upsampled: uint8 [3, h_up, w_up]; faces: uint8 [n, 3, 512, 512]; matrices: float64 [n, 2, 3] paste
    matrices (restoration.alignment.paste_affine); masks: float64 [n, 512, 512] from `parse_mask`, or
    None for facexlib's square mask (use_parse=False). Returns uint8 [3, h_up, w_up].
    """
    if len(faces) == 0:
        return upsampled.clone()
    canvas = upsampled.to(torch.float64 if masks is not None else torch.float32)
    for i in range(len(faces)):
        if masks is not None:
            _paste_parsed(canvas, faces[i], masks[i], matrices[i])
        else:
            _paste_square(canvas, faces[i], matrices[i], upscale)
    return canvas.to(torch.uint8)  # numpy astype(uint8): truncation; the blend stays within [0, 256)
