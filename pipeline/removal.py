"""The background-removal tasks: `remove_background` (the cut-out) and `mask` (its alpha matte alone):
their descriptors and their device programs after the segmentation forward (which the lane batches
across jobs: pipeline/segmentation/segment.py).

An animation goes through in two passes, so that its memory is a few bytes per pixel, not the float
colour of every frame: first every frame's alpha (one byte per pixel), which the crop box and the
confidence need whole (`full_alphas`); then each frame's colour and output pixels, made as the encoder
asks for them (`frame_pixels`; BENCHMARKS.md, animations)."""
from __future__ import annotations

import torch

from imaging.confidence import matte_confidence
from imaging.decode import DecodedImage, as_tensor
from imaging.knobs import Knob
from imaging.matte_ops import Box, apply_matte_knobs
from imaging.options import OutputOptions
from imaging.output import output_box, output_frame
from imaging.temporal import MatteSmoother
from models.spec import ModelSpec
from pipeline.carvekit.chain import Networks, post_process
from pipeline.carvekit.params import CARVEKIT, JOB_KNOBS, POSTS, PRES, ChainParams, default_of
from pipeline.restore import restore_faces
from pipeline.segmentation.postprocess import foreground_colour, full_size_alpha, keep_own_alpha
from pipeline.task import BG_COLOR, Control, NetworkByName, TaskSpec

FOREGROUNDS = ("auto", "blur_fusion", "carvekit", "none")


def _chain_knob(name: str, low: int, high: int, doc: str) -> Knob:
    return Knob(name, int, None, f"{doc} (default {default_of(name)})", bounds=(low, high), nullable=True)


SEG_MASK_SIZE = Knob("seg_mask_size", int, None, "network input size; default: the model's own (BiRefNet_dynamic: "
                     "a multiple of 32 from 256 to 2304)", bounds=(32, 4096), nullable=True)
FOREGROUND = Knob("foreground", str, "auto", "colour of the cut-out's edges: blur_fusion decontamination, carvekit's "
                  "grey blend, or the photo's own pixels; auto = blur_fusion for BiRefNet models and the carvekit "
                  "chain, none otherwise", choices=FOREGROUNDS)
# The chain's knobs left out take carvekit/params.py's ChainParams (or carvekit's recommendation for the network).
CHAIN_KNOBS = (
    Knob("pre", str, "none", "carvekit's automatic network choice: autoscene (scene classifier) or auto (+ YOLOv4)",
         choices=PRES),
    Knob("post", str, None, f"carvekit's matte refinement; default cascade_fba for model {CARVEKIT}, else none",
         choices=POSTS, nullable=True),
    _chain_knob("matting_mask_size", 64, 4096, "FBA input size"),
    _chain_knob("refine_mask_size", 64, 4096, "CascadePSP input size"),
    _chain_knob("trimap_dilation", 0, 256, "unknown band radius in pixels; deeplabv3: 40"),
    _chain_knob("trimap_erosion", 0, 64, "erosion iterations of the sure foreground; deeplabv3: 20"),
    _chain_knob("trimap_prob_threshold", 0, 255, "mask values above it are sure foreground"),
)
RESTORE_FACES = Knob("restore_faces", bool, False, "restore faces with GFPGAN v1.4 before the background is removed")

assert {SEG_MASK_SIZE.name, *(knob.name for knob in CHAIN_KNOBS)} >= set(JOB_KNOBS)

REMOVE_BACKGROUND = TaskSpec("remove_background", output_name="trans", output_kind="cutout", role="segmentation",
                             knobs=(SEG_MASK_SIZE, FOREGROUND, *CHAIN_KNOBS, RESTORE_FACES, BG_COLOR))
MASK = TaskSpec("mask", output_name="mask", output_kind="alpha", role="segmentation",
                knobs=(SEG_MASK_SIZE, *CHAIN_KNOBS, RESTORE_FACES), output_fixed={"channels": "alpha"})


def foreground_method(foreground: str, plan: ChainParams, spec: ModelSpec) -> str:
    """The `foreground` knob's method; auto: blur_fusion after carvekit's refinement, else the network's own."""
    if foreground != "auto":
        return foreground
    return "blur_fusion" if plan.post != "none" else spec.default_foreground


def restore_frames(frames: list[DecodedImage], networks: NetworkByName, device: torch.device,
                   control: Control) -> tuple[list[DecodedImage], int]:
    """The `restore_faces` step on every frame; the frames and how many faces were restored."""
    restored = [restore_faces(frame, networks, device, control) for frame in frames]
    return [frame for frame, _ in restored], sum(found for _, found in restored)


def full_alphas(frames: list[DecodedImage], mattes: list[torch.Tensor], plan: ChainParams, networks: Networks,
                output: OutputOptions, control: Control,
                smoother: MatteSmoother | None = None) -> tuple[torch.Tensor, Box | None, dict]:
    """The first pass, on the device: every frame's full-size alpha [N,H,W] uint8 (carvekit's
    refinement, a video's temporal smoothing, then the job's matte knobs), the confidence (of the
    model's matte) and the crop box, which need every frame. One byte per pixel is all that is kept of
    an animation's frames here."""
    width, height = frames[0].size
    alphas = torch.empty((len(frames), height, width), dtype=torch.uint8, device=mattes[0].device)
    if plan.post != "none":
        control.progress(f"refining the matte ({plan.post})")
    for index, (frame, matte) in enumerate(zip(frames, mattes)):
        control.check()
        rgb = as_tensor(frame.rgb, alphas.device)
        alphas[index] = keep_own_alpha(post_process(networks, rgb, full_size_alpha(matte, frame), plan), frame)
        if smoother is not None:
            alphas[index] = smoother(alphas[index], rgb)
    figures = matte_confidence(alphas).as_dict()
    for index in range(len(alphas)):
        alphas[index] = apply_matte_knobs(alphas[index], output)
    box = output_box(alphas, output)
    if box is not None:
        figures["crop"] = box.as_dict()
    return alphas, box, figures


def frame_pixels(frame: DecodedImage, alpha: torch.Tensor, box: Box | None, method: str, output: OutputOptions,
                 bg_color: str | None, control: Control) -> torch.Tensor:
    """The second pass for one frame, on the device: its colour (foreground `method`), then
    crop/size/channels; the float colour of one frame at a time. The pixels stay on the device."""
    control.check()
    rgb = as_tensor(frame.rgb, alpha.device)
    colour = foreground_colour(rgb, alpha, method) if output.channels == "rgba" else rgb
    return output_frame(colour, alpha, box, output, bg_color)


def still_pixels(frame: DecodedImage, mattes: list[torch.Tensor], plan: ChainParams, method: str, networks: Networks,
                 output: OutputOptions, bg_color: str | None, control: Control) -> tuple[torch.Tensor, dict]:
    """Both passes for a still."""
    alphas, box, figures = full_alphas([frame], mattes, plan, networks, output, control)
    return frame_pixels(frame, alphas[0], box, method, output, bg_color, control), figures


def clip_pixels(frames: list[DecodedImage], mattes: list[torch.Tensor], plan: ChainParams, method: str,
                networks: Networks, output: OutputOptions, bg_color: str | None, smoother: MatteSmoother | None,
                control: Control) -> list[torch.Tensor]:
    """Both passes for consecutive frames of a video (a clip has no crop box): the first over the whole
    batch, in order, so that the smoother carries each frame's matte to the next; then each frame's pixels."""
    alphas, _, _ = full_alphas(frames, mattes, plan, networks, output, control, smoother)
    return [frame_pixels(frame, alpha, None, method, output, bg_color, control)
            for frame, alpha in zip(frames, alphas, strict=True)]
