"""The BiRefNet / RMBG-2.0 checkpoint table: every entry, ToonOut's key wrappers, BiRefNet_dynamic's sizes."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import parity
from models import registry
from models.birefnet_zoo import ZOO
from models.spec import SizeOutOfRange
from pipeline.segmentation.segment import segmentation_input_size, predict_mattes

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


# -- The zoo ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("release", ZOO, ids=lambda r: r.repo)
def test_every_entry_builds_with_its_stated_patch_order_and_pins_one_commit(release):
    spec = registry.get_spec(release.repo)
    with torch.device("meta"):
        model = spec.build()
    assert model.legacy_patch_order is release.legacy_patch_order is spec.extra["legacy_patch_order"]
    assert len(model.bb.layers[2].blocks) == {"swin_v1_l": 18, "swin_v1_t": 6}[release.backbone]
    download = spec.weights.download
    assert download.repo == release.repo and spec.weights.filename.endswith(download.filename)
    assert download.revision is None or re.fullmatch(r"[0-9a-f]{40}", download.revision)
    assert all(side % 32 == 0 for side in spec.preprocess.size)


def test_toonout_keys_under_training_wrappers_load_strictly():
    # ToonOut's file was saved from torch.compile(DataParallel(model)): every key under "module._orig_mod.".
    spec = registry.get_spec("joelseytre/toonout")
    keys = parity.oracle_module().manifest("birefnet-general")["keys"]
    with torch.device("meta"):
        model = spec.build()
        published = {f"module._orig_mod.{k}": torch.empty(shape) for k, (shape, _) in keys.items()}
    registry.load_state(model, spec.remap_keys(published, model), assign=True)
    with pytest.raises(registry.CheckpointMismatch):
        registry.load_state(model, published, assign=True)


# -- BiRefNet_dynamic: any multiple of 32 from 256 to 2304 ---------------------------------------------

def test_dynamic_entry_takes_sizes_in_its_range_only():
    spec = registry.get_spec("ZhengPeng7/BiRefNet_dynamic")
    assert segmentation_input_size(spec, None) == (1024, 1024)
    assert segmentation_input_size(spec, 2304) == (2304, 2304)
    for size in (224, 300, 2336):
        with pytest.raises(SizeOutOfRange, match="multiple of 32 from 256 to 2304"):
            segmentation_input_size(spec, size)
    # A fixed-size entry keeps today's behaviour: the job's size is taken as asked.
    assert segmentation_input_size(registry.get_spec("ZhengPeng7/BiRefNet"), 300) == (300, 300)


@pytest.fixture(scope="module")
def swin_l_folder(tmp_path_factory):
    """The birefnet-general stand-in under the file names of BiRefNet_dynamic and BiRefNet_HR."""
    root = tmp_path_factory.mktemp("swin-l")
    source = root / "stand-in.safetensors"
    parity.save_published(parity.oracle_state("birefnet-general"), source, "safetensors")
    for name in ("ZhengPeng7/BiRefNet_dynamic", "ZhengPeng7/BiRefNet_HR"):
        target = root / registry.get_spec(name).weights.filename
        target.parent.mkdir(parents=True)
        os.symlink(source, target)
    yield root
    shutil.rmtree(root)  # 885 MB: gone before the next module writes its own


@pytest.mark.slow
def test_dynamic_entry_runs_at_two_sizes_as_the_plain_entry_does(swin_l_folder):
    image = np.asarray(Image.open(DATA / "carvekit" / "cat.jpg").convert("RGB"))
    dynamic = registry.get_spec("ZhengPeng7/BiRefNet_dynamic")
    plain = registry.get_spec("ZhengPeng7/BiRefNet_HR")  # same weights format and patch order, fixed 2048
    models = {spec.name: registry.load(spec.name, swin_l_folder) for spec in (dynamic, plain)}
    mattes = {}
    for size in (256, 288):
        mattes[size] = predict_mattes(models[dynamic.name], dynamic, [image], 1, size)[0]
        expected = predict_mattes(models[plain.name], plain, [image], 1, size)[0]
        assert mattes[size].shape == (1, 1, size, size)
        torch.testing.assert_close(mattes[size], expected, rtol=0, atol=0)
    # The size reaches the network: the 288 matte is not the 256 one resampled.
    assert not torch.equal(F.interpolate(mattes[288], size=256, mode="bilinear"), mattes[256])

