"""The GFPGANer.enhance pipeline's geometry (restoration.restore): where a restored face lands, what
happens without faces, the centre face, batching.

These tests need faces at chosen places with a restorer whose output is recognisable, so they feed
the procedure synthetic inputs: `PlantedDetector` gives RetinaFace's outputs for chosen faces
(decoded by the real restoration.detection code), the restorer is the colour negative of the face and
the parser a fixed class map. The real networks (GFPGAN, ParseNet, RetinaFace through the registry)
run the same procedure end to end in tests/test_tasks.py, and each passes its parity cases.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from models.retinaface import RetinaFaceOutput
from pipeline.restoration.detection import DetectionParams, prior_boxes
from pipeline.restoration.paste import background
from pipeline.restoration.restore import RestoreParams, restore, restorer_input, restorer_output

TEMPLATE_512 = torch.tensor([[192.98, 239.95], [318.90, 240.19], [256.63, 314.02], [201.26, 371.41], [313.09, 371.15]])


def face_landmarks(cx: float, cy: float, size: float) -> torch.Tensor:
    """Five landmarks of an upright face about `size` px wide centred near (cx, cy)."""
    return (TEMPLATE_512 - 256) * (size / 512) + torch.tensor([cx, cy])


class PlantedDetector(nn.Module):
    """RetinaFace's outputs for an image with these faces: one confident prior per face, whose box and
    landmark regressions decode to the face's landmarks and their bounding box."""

    def __init__(self, faces: list[torch.Tensor]):
        super().__init__()
        self.faces = faces
        self.weight = nn.Parameter(torch.zeros(()))  # a dtype for the pipeline to read

    def forward(self, x: torch.Tensor) -> RetinaFaceOutput:
        height, width = x.shape[-2:]
        priors = prior_boxes(height, width)
        n = priors.shape[0]
        loc, landmarks = torch.zeros(n, 4), torch.zeros(n, 10)
        logits = torch.tensor([[9.0, -9.0]]).repeat(n, 1)
        scale = torch.tensor([width, height], dtype=torch.float32)
        for k, points in enumerate(self.faces):
            index = (k + 1) * n // (len(self.faces) + 1)
            prior = priors[index]
            rel = points / scale
            low, high = rel.min(0).values - 0.02, rel.max(0).values + 0.02
            loc[index, :2] = ((low + high) / 2 - prior[:2]) / (0.1 * prior[2:])
            loc[index, 2:] = torch.log((high - low) / prior[2:]) / 0.2
            landmarks[index] = ((rel - prior[:2]) / (0.1 * prior[2:])).reshape(-1)
            logits[index] = torch.tensor([-9.0, 9.0])
        return RetinaFaceOutput(loc[None], logits[None], landmarks[None])


def negative(x: torch.Tensor) -> torch.Tensor:
    """Stand-in restorer: the colour negative of the face (a plain callable, GFPGAN's signature)."""
    return -x


class FaceParser(nn.Module):
    """Stand-in ParseNet: every pixel skin (class 1), returned as ParseNet's (out_mask, out_img) pair."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = torch.zeros(x.shape[0], 19, *x.shape[-2:], dtype=x.dtype)
        logits[:, 1] = 1.0
        return logits, x


def image(height: int = 96, width: int = 128) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                          indexing="ij")
    return torch.stack((100 + 60 * torch.sin(x / 9), 90 + 50 * torch.cos(y / 7), 40 + x)).round().to(torch.uint8)


def test_restorer_conversions_round_trip_every_8bit_value():
    values = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(1, 3, 16, 16)
    assert torch.equal(restorer_output(restorer_input(values)), values)
    assert torch.equal(restorer_output(torch.tensor([-3.0, -1.0, 0.0, 1.0, 7.0])), torch.tensor([0, 0, 128, 255, 255],
                                                                                               dtype=torch.uint8))


def test_a_face_is_restored_in_place_and_the_rest_is_the_upsampled_background():
    picture = image()
    detector = PlantedDetector([face_landmarks(60, 50, 50)])
    result = restore(picture, detector, negative, FaceParser(), RestoreParams(upscale=2))
    assert result.faces_found == 1 and result.image.shape == (3, 192, 256)
    assert torch.equal(result.restored, 255 - result.cropped)
    up = background(picture, (192, 256)).long()
    out = result.image.long()
    centre = out[:, 90:110, 110:130]  # the face centre, (60, 50) * 2: well inside the soft mask
    assert ((centre + up[:, 90:110, 110:130]) - 255).abs().float().mean() < 3  # the negative landed here
    assert torch.equal(out[:, :, 220:], up[:, :, 220:])  # far from the face: untouched
    assert torch.equal(out[:, 170:], up[:, 170:])


def test_an_image_without_faces_is_the_upsampled_background():
    picture = image()
    calls = []
    params = RestoreParams(upscale=2)
    result = restore(picture, PlantedDetector([]), negative, FaceParser(), params, progress=lambda i, n: calls.append((i, n)))
    assert result.faces_found == 0 and calls == [(0, 0)]
    assert torch.equal(result.image, background(picture, (192, 256)))
    same = restore(picture, PlantedDetector([]), negative, FaceParser(), RestoreParams(upscale=1))
    assert torch.equal(same.image, picture)

    def nearest_x2(img: torch.Tensor, outscale: float) -> torch.Tensor:
        return img.repeat_interleave(int(outscale), -1).repeat_interleave(int(outscale), -2)

    upsampled = restore(picture, PlantedDetector([]), negative, FaceParser(), params, background_upsampler=nearest_x2)
    assert torch.equal(upsampled.image, nearest_x2(picture, 2))


def test_only_the_centre_face_is_restored_when_asked():
    faces = [face_landmarks(30, 30, 40), face_landmarks(66, 50, 40)]
    both = restore(image(), PlantedDetector(faces), negative, None, RestoreParams(upscale=1, use_parse=False))
    centre = restore(image(), PlantedDetector(faces), negative, None,
                     RestoreParams(upscale=1, use_parse=False, only_center_face=True))
    assert both.faces_found == 2 and centre.faces_found == 1
    assert torch.allclose(centre.faces.landmarks[0], faces[1], atol=0.05)


def test_faces_go_through_the_restorer_in_batches_with_progress():
    faces = [face_landmarks(30, 30, 40), face_landmarks(90, 55, 40)]
    seen, calls = [], []

    def counting(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        return negative(x)

    one = restore(image(), PlantedDetector(faces), counting, None, RestoreParams(upscale=1, use_parse=False, batch_size=1),
                  progress=lambda i, n: calls.append((i, n)))
    assert seen == [1, 1] and calls == [(1, 2), (2, 2)]
    seen.clear()
    batched = restore(image(), PlantedDetector(faces), counting, None, RestoreParams(upscale=1, use_parse=False))
    assert seen == [2] and torch.equal(one.image, batched.image)
    assert not torch.equal(batched.image, image())  # the square-mask paste changed the faces


def test_parameters_are_checked():
    with pytest.raises(ValueError, match="upscale"):
        RestoreParams(upscale=0.5)
    with pytest.raises(ValueError, match="parser"):
        restore(image(), PlantedDetector([]), negative, None, RestoreParams())
    assert RestoreParams().detection == DetectionParams() and math.isclose(RestoreParams().weight, 0.5)


def test_detection_on_a_smaller_copy_reports_input_coordinates():
    """get_face_landmarks_5(resize=48) on 96 x 128: detection on a 48 x 64 Lanczos copy, coordinates x 2."""
    from pipeline.restoration.detection import detect_faces

    seen = []

    class Recording(PlantedDetector):
        def forward(self, x):
            seen.append(tuple(x.shape[-2:]))
            return super().forward(x)

    faces = detect_faces(Recording([face_landmarks(30, 25, 20)]), image(), DetectionParams(resize=48))
    assert seen == [(48, 64)]
    assert torch.allclose(faces.landmarks[0], face_landmarks(30, 25, 20) * 2, atol=0.05)
