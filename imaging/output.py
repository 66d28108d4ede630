"""From a cut-out's colour and alpha on the device to the pixels of the answer: crop, size, channels.

One path for stills and animations (a still is one frame). The order, after the job's matte knobs
(imaging/matte_ops.apply_matte_knobs) and the foreground colour (pipeline/segmentation/postprocess.foreground_colour):

1. crop: one box for all frames, from every frame's alpha (so an animation keeps one canvas);
2. size: scaled down to the size's pixel budget, colour premultiplied, antialiased;
3. channels: the alpha matte alone (grey), or the cut-out composited as bg_color asks
   (imaging/output.cutout), which also fills a margin beyond the image.
"""
from __future__ import annotations

import numpy as np
import torch

from imaging.matte_ops import Box, crop, crop_box, fit_within, resize_cutout
from imaging.options import OutputOptions, parse_color


def output_box(alphas: torch.Tensor | list[torch.Tensor], options: OutputOptions) -> Box | None:
    """The crop box over all frames' alphas ([N,H,W], or a list of [H,W]), or None when options.crop is off."""
    if not options.crop:
        return None
    return crop_box(alphas if isinstance(alphas, torch.Tensor) else torch.stack(alphas), options.margin,
                    options.crop_threshold)


def output_size(height: int, width: int, box: Box | None, options: OutputOptions) -> tuple[int, int]:
    """(height, width) of every output frame of an image of height x width cropped to `box`."""
    if box is not None:
        height, width = box.height, box.width
    return fit_within(height, width, options.max_pixels)


def output_frame(colour: torch.Tensor, alpha: torch.Tensor, box: Box | None, options: OutputOptions,
                 bg_color: str | None = None) -> torch.Tensor:
    """One frame's HxW grey (channels=alpha), HxWx3 RGB (opaque bg_color) or HxWx4 RGBA uint8 pixels, on
    the device (`to_host` brings them to the encoder).

    `colour` is [3,H,W] uint8 or float in [0,1] (a decontaminated foreground), `alpha` [H,W] uint8, on
    one device; `box` is output_box over every frame of the animation (one canvas for all frames).
    """
    size = output_size(*alpha.shape, box, options)
    if box is not None:
        colour, alpha = crop(colour, box), crop(alpha, box)
    colour, alpha = resize_cutout(colour, alpha, size)
    return alpha if options.channels == "alpha" else cutout(colour, alpha, bg_color)


def output_frames(colours: list[torch.Tensor], alphas: list[torch.Tensor], options: OutputOptions,
                  bg_color: str | None = None) -> list[torch.Tensor]:
    """output_frame for every frame, with one box over all of them."""
    box = output_box(alphas, options)
    return [output_frame(colour, alpha, box, options, bg_color) for colour, alpha in zip(colours, alphas)]


def cutout(rgb: torch.Tensor, alpha: torch.Tensor, bg_color: str | None) -> torch.Tensor:
    """HxWx4 RGBA (or HxWx3 RGB on an opaque background colour) uint8 from [3,H,W] colour and [H,W] alpha,
    on their device.

    `rgb` is uint8 or float in [0,1] (a decontaminated foreground).
    """
    if bg_color is None and rgb.dtype == torch.uint8:  # the common case: no arithmetic on 12 MP
        # Joined along the last dim of the HxWxC views: one pass writes the HxWx4 array the encoder
        # takes as it is (a CHW concatenation would need a second, transposing copy).
        return torch.cat([rgb.permute(1, 2, 0), alpha[..., None]], 2)
    colour = rgb.float() / 255 if rgb.dtype == torch.uint8 else rgb.float()
    if bg_color is None:
        pixels = torch.cat([colour.mul(255).round_().to(torch.uint8), alpha[None]], 0)
    else:
        r, g, b, a = parse_color(bg_color)
        weight = alpha[None].float() / 255
        background = torch.tensor([r, g, b], device=rgb.device, dtype=torch.float32).view(3, 1, 1) / 255
        under = (a / 255) * (1 - weight)  # how much of the background shows
        out_alpha = weight + under
        mixed = (colour * weight + background * under) / out_alpha.clamp_min(1e-6)
        pixels = mixed.mul(255).round_().clamp_(0, 255).to(torch.uint8)
        if a != 255:
            pixels = torch.cat([pixels, out_alpha.mul(255).round_().to(torch.uint8)], 0)
    return pixels.permute(1, 2, 0).contiguous()


def to_host(pixels: torch.Tensor) -> np.ndarray:
    """The output's one device-to-host copy, as the encoder takes it (a stage on an I/O thread, off the lane)."""
    return pixels.cpu().numpy()
