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


def output_box(alphas: list[torch.Tensor], options: OutputOptions) -> Box | None:
    """The crop box over all frames' [H,W] alphas, or None when options.crop is off."""
    if not options.crop:
        return None
    return crop_box(torch.stack(alphas), options.margin, options.crop_threshold)


def output_frames(colours: list[torch.Tensor], alphas: list[torch.Tensor], options: OutputOptions,
                  bg_color: str | None = None) -> list[np.ndarray]:
    """HxW grey (channels=alpha), HxWx3 RGB (opaque bg_color) or HxWx4 RGBA uint8 arrays, one per frame.

    `colours` are [3,H,W] uint8 or float in [0,1] (a decontaminated foreground), `alphas` [H,W] uint8,
    all on one device and of one size.
    """
    box = output_box(alphas, options)
    height, width = (box.height, box.width) if box else alphas[0].shape
    size = fit_within(height, width, options.max_pixels)
    frames = []
    for colour, alpha in zip(colours, alphas):
        if box is not None:
            colour, alpha = crop(colour, box), crop(alpha, box)
        colour, alpha = resize_cutout(colour, alpha, size)
        frames.append(alpha.cpu().numpy() if options.channels == "alpha" else cutout(colour, alpha, bg_color))
    return frames
