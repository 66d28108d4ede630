"""From a cut-out's colour and alpha on the device to the pixels of the answer: crop, size, channels.

One path for stills and animations (a still is one frame). The order, after the job's matte knobs
(imaging/matte_ops.apply_matte_knobs) and the foreground colour (pipeline/segmentation/postprocess.foreground_colour):

1. crop: one box for all frames, from every frame's alpha (so an animation keeps one canvas);
2. size: scaled down to the size's pixel budget, colour premultiplied, antialiased;
3. channels: the alpha matte alone (grey), or the cut-out composited as bg_color asks
   (imaging/output.cutout), which also fills a margin beyond the image;
4. for an RGB/RGBA PNG where PNG_FILTER_ON_DEVICE is on, its filtered rows (png_rows), so that the
   host only deflates them.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from imaging.matte_ops import Box, crop, crop_box, fit_within, resize_cutout
from imaging.options import OutputOptions, parse_color
from imaging.png import COLOUR_TYPES, FILTER_UP, FilteredRows, PngSettings, filter_type

DEVICE_FILTER_ROWS = 512  # filter_rows works on this many rows at a time: its int16 temporaries stay small


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


def filter_rows(pixels: torch.Tensor, writer: str) -> FilteredRows:
    """(H, W, C) uint8 RGB/RGBA pixels, on their device, as the rows `writer` compresses: Paeth's
    residuals for compact, Up's for fast, the same bytes as imaging/png.py's paeth_rows and up_rows."""
    kind = filter_type(writer)
    height, width, channels = pixels.shape
    rows = pixels.reshape(height, width * channels)
    out = torch.empty((height, 1 + width * channels), dtype=torch.uint8, device=pixels.device)
    out[:, 0] = kind
    for start in range(0, height, DEVICE_FILTER_ROWS):
        stop = min(height, start + DEVICE_FILTER_ROWS)
        # the rows and the one above them, with the zeros that PNG puts above the image and left of it
        wide = F.pad(rows[max(0, start - 1):stop].to(torch.int16),
                     (channels, 0, 1 if start == 0 else 0, 0))
        up, current = wide[:-1, channels:], wide[1:, channels:]
        if kind == FILTER_UP:
            prediction = up
        else:
            left, up_left = wide[1:, :-channels], wide[:-1, :-channels]
            dist_left = (up - up_left).abs_()  # |p - left|, where p = left + up - up_left
            dist_up = (left - up_left).abs_()  # |p - up|
            dist_up_left = (left + up - 2 * up_left).abs_()  # |p - up_left|
            pick_left = (dist_left <= dist_up) & (dist_left <= dist_up_left)
            prediction = torch.where(pick_left, left, torch.where(dist_up <= dist_up_left, up, up_left))
        out[start:stop, 1:] = (current - prediction).bitwise_and_(0xFF).to(torch.uint8)
    return FilteredRows(out, channels)


def filters_png_on_device(options: OutputOptions, png: PngSettings) -> bool:
    """Whether a still's PNG leaves the device as its filtered rows (png_rows): RGB and RGBA ones, not
    the grey matte (channels=alpha, the mask task's), which Pillow writes."""
    return png.filter_on_device and options.format == "png" and options.channels != "alpha"


def png_rows(pixels: torch.Tensor, options: OutputOptions, png: PngSettings) -> torch.Tensor | FilteredRows:
    """An RGB/RGBA still's pixels as the PNG writer's filtered rows, on their device, the colour under
    alpha 0 zeroed first unless kept (the encoder's zero_invisible); grey pixels as they are."""
    if pixels.ndim != 3 or pixels.shape[2] not in COLOUR_TYPES:
        return pixels
    if pixels.shape[2] == 4 and not options.keep_invisible_rgb:
        pixels = pixels * (pixels[..., 3:] != 0)
    return filter_rows(pixels, png.writer)


def to_host(pixels: torch.Tensor | FilteredRows) -> np.ndarray | FilteredRows:
    """The output's one device-to-host copy, as the encoder takes it (a stage on an I/O thread, off the lane)."""
    if isinstance(pixels, FilteredRows):
        return FilteredRows(pixels.rows.cpu().numpy(), pixels.channels)
    return pixels.cpu().numpy()
