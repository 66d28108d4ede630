"""From a cut-out's colour and alpha on the device to the pixels of the answer: crop, size, channels.

One path for stills and animations (a still is one frame). The order, after the job's matte knobs
(imaging/matte_ops.refine_matte) and the foreground colour (imaging/postprocess.foreground_colour):

1. crop: one box for all frames, from every frame's alpha (so an animation keeps one canvas);
2. size: scaled down to the size's pixel budget, colour premultiplied, antialiased;
3. channels: the alpha matte alone (grey), or the cut-out composited as bg_color asks
   (imaging/postprocess.cutout), which also fills a margin beyond the image.
"""
from __future__ import annotations

import numpy as np
import torch

from imaging.matte_ops import Box, crop, crop_box, fit_within, resize_cutout
from imaging.options import OutputOptions
from imaging.postprocess import cutout


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
                 bg_color: str | None = None) -> np.ndarray:
    """One frame's HxW grey (channels=alpha), HxWx3 RGB (opaque bg_color) or HxWx4 RGBA uint8 array.

    `colour` is [3,H,W] uint8 or float in [0,1] (a decontaminated foreground), `alpha` [H,W] uint8, on
    one device; `box` is output_box over every frame of the animation (one canvas for all frames).
    """
    size = output_size(*alpha.shape, box, options)
    if box is not None:
        colour, alpha = crop(colour, box), crop(alpha, box)
    colour, alpha = resize_cutout(colour, alpha, size)
    return alpha.cpu().numpy() if options.channels == "alpha" else cutout(colour, alpha, bg_color)


def output_frames(colours: list[torch.Tensor], alphas: list[torch.Tensor], options: OutputOptions,
                  bg_color: str | None = None) -> list[np.ndarray]:
    """output_frame for every frame, with one box over all of them."""
    box = output_box(alphas, options)
    return [output_frame(colour, alpha, box, options, bg_color) for colour, alpha in zip(colours, alphas)]
