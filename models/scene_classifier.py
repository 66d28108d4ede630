"""carvekit's scene classifier: torchvision DenseNet-161 with a two-layer head (hard / soft / digital).

carvekit publishes it as a pickled whole module, which is never unpickled at run time here:
builder/convert_scene_classifier.py turns it, once at image build time, into
`scene_classifier.safetensors` (its state dict, keys exactly torchvision's: features.*,
classifier.0.*, classifier.3.*) and `scene_classifier.json` (its class_to_idx map).

The head is Sequential(Linear, ReLU, Dropout, Linear); the published widths are not documented,
so its two Linear layers take their sizes from the tensors they load.
"""
from __future__ import annotations

from torch import nn
from torchvision.models import densenet161

from models.spec import Download, ModelSpec, Preprocess, WeightsSource


class CheckpointSizedLinear(nn.Linear):
    """A Linear that adopts the (out, in) shape of the weight it is loaded with."""

    def __init__(self):
        super().__init__(1, 1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        weight = state_dict.get(prefix + "weight")
        if weight is not None and weight.dim() == 2 and weight.shape != self.weight.shape:
            self.out_features, self.in_features = weight.shape
            self.weight = nn.Parameter(self.weight.new_empty(weight.shape))
            self.bias = nn.Parameter(self.bias.new_empty(weight.shape[0]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def build() -> nn.Module:
    model = densenet161(weights=None)
    # Dropout's rate is irrelevant in eval mode; its index keeps the second Linear at classifier.3.
    model.classifier = nn.Sequential(CheckpointSizedLinear(), nn.ReLU(), nn.Dropout(), CheckpointSizedLinear())
    return model


CHECKPOINTS = [
    ModelSpec(
        name="scene_classifier",
        family="scene_classifier",
        build=build,
        # The published file is a pickled module: builder/ converts it once, at build time, so the
        # worker never unpickles anything.
        weights=WeightsSource(
            "scene_classifier.safetensors",
            Download("Carve/scene_classifier", "scene_classifier.pth", revision="71c8e4c771dd5a20ff0c5c9e3c8f1c9cf8082740",
                     sha512="6d8692510abde453b406a1fea557afdea62fd2a2a2677283a3ecc2"
                            "341a4895ee99ed65cedcb79b80775db14c3ffcfc0aad2caec1d85140678852039d2d4e76b4"),
            converter="builder.convert_scene_classifier",
            file_format="safetensors",
        ),
        # The real recipe (shorter side to 256 bilinear, centre crop 224, ImageNet mean/std) is
        # pipeline/carvekit/auto_select.scene_input: a resize-and-crop does not fit Preprocess.
        preprocess=Preprocess(size=(224, 224), resample="bilinear", backend="pil"),
        # The top-1 class chooses the segmentation network: keep carvekit's default float32.
        half_ok=False,
        role="classifier",
        notes="carvekit scene classifier (hard/soft/digital), converted from Carve/scene_classifier",
        licence="Apache-2.0 (carvekit)",
        extra={"class_map": "scene_classifier.json"},
    ),
]
