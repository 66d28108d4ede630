"""DeepLabV3-ResNet101 against the parity oracle, and carvekit's argmax-to-mask conversion."""
from __future__ import annotations

import numpy as np
import torch

from models.deeplabv3 import deeplab_matte


def test_matte_reproduces_carvekits_uint8_wrap():
    classes = torch.arange(21)
    logits = torch.nn.functional.one_hot(classes, 21).float().T.reshape(1, 21, 1, 21)
    matte = deeplab_matte(logits)
    assert matte.shape == (1, 1, 1, 21)
    # carvekit: Image.fromarray(out.argmax(0).byte().numpy() * 255), numpy uint8 arithmetic
    carvekit = classes.byte().numpy() * 255
    assert carvekit.dtype == np.uint8
    np.testing.assert_array_equal(np.round(matte[0, 0, 0].numpy() * 255).astype(np.uint8), carvekit)
    assert float(matte[0, 0, 0, 0]) == 0.0 and round(float(matte[0, 0, 0, 15]) * 255) == 241
