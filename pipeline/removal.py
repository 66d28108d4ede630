"""The background-removal tasks: `remove_background` (the cut-out) and `mask` (its alpha matte alone)."""
from __future__ import annotations

from imaging.knobs import Knob
from pipeline.carvekit.params import CARVEKIT, JOB_KNOBS, POSTS, PRES, default_of
from pipeline.task import BG_COLOR, TaskSpec

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
