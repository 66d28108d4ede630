"""Face detection as GFPGANer runs it: facexlib's RetinaFace.detect_faces and FaceRestoreHelper's
get_face_landmarks_5 (facexlib 260620ae, detection/retinaface.py, detection/retinaface_utils.py,
utils/face_restoration_helper.py).

detect_faces(image, conf_threshold=0.97) with use_origin_size=True (GFPGANer's call): the network
sees the BGR image at its own size, minus (104, 117, 123); every prior's box and landmarks are decoded
with the variances (0.1, 0.2) and scaled to pixels; priors scoring above the threshold are sorted by
score (numpy's argsort()[::-1]) and NMS at IoU 0.4 keeps the survivors (facexlib's `py_cpu_nms` is
torchvision.ops.nms itself: IoU without the +1 pixel rule, ties kept in input order).
get_face_landmarks_5 then drops faces whose eyes are under `eye_dist_threshold` pixels apart (5 in
GFPGANer) and, with only_center_face, keeps the face whose box centre is nearest the image centre.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from imaging.boxes import nms_in_numpy_order
from imaging.resample import cv2_resize_lanczos4
from models.retinaface import BGR_MEAN, PRIORS, PriorConfig, face_scores


@dataclass(frozen=True)
class DetectionParams:
    """The detection knobs of GFPGANer.enhance -> FaceRestoreHelper.get_face_landmarks_5."""

    conf_threshold: float = 0.97  # get_face_landmarks_5 calls detect_faces(img, 0.97)
    nms_threshold: float = 0.4  # detect_faces' default
    eye_dist_threshold: float | None = 5.0  # GFPGANer: skip faces whose eyes are < 5 px apart
    # get_face_landmarks_5's `resize`: detect on a copy whose shorter side is this many pixels
    # (OpenCV Lanczos-4), coordinates scaled back. None (GFPGANer's call): the image as it is.
    resize: int | None = None


@dataclass(frozen=True)
class Faces:
    """Detected faces in the input image's pixel coordinates, best score first (after NMS order)."""

    boxes: torch.Tensor  # [n, 4] float32 x1, y1, x2, y2
    scores: torch.Tensor  # [n] float32
    landmarks: torch.Tensor  # [n, 5, 2] float32 (x, y): left eye, right eye, nose, left/right mouth corner

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, index: torch.Tensor | list[int]) -> Faces:
        return Faces(self.boxes[index], self.scores[index], self.landmarks[index])


def prior_boxes(height: int, width: int, config: PriorConfig = PRIORS) -> torch.Tensor:
    """facexlib's PriorBox(cfg, (height, width)).forward(): [N, 4] (cx, cy, w, h), relative to the image.

    Order: level, row i, column j, anchor size. Computed in float64 as the original's Python floats
    ((j + 0.5) * step / width, ...), then rounded to float32 as its torch.Tensor(anchors).
    """
    levels = []
    for step, min_sizes in zip(config.steps, config.min_sizes):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        i = torch.arange(rows, dtype=torch.float64).view(rows, 1, 1).expand(rows, cols, len(min_sizes))
        j = torch.arange(cols, dtype=torch.float64).view(1, cols, 1).expand(rows, cols, len(min_sizes))
        size = torch.tensor(min_sizes, dtype=torch.float64).view(1, 1, -1).expand(rows, cols, len(min_sizes))
        levels.append(torch.stack(((j + 0.5) * step / width, (i + 0.5) * step / height,
                                   size / width, size / height), dim=-1).reshape(-1, 4))
    return torch.cat(levels).float()


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor, variance: tuple[float, float] = PRIORS.variance) -> torch.Tensor:
    """retinaface_utils.decode: [N, 4] regressions -> (x1, y1, x2, y2) relative boxes, in its order of operations."""
    centres = priors[:, :2] + loc[:, :2] * variance[0] * priors[:, 2:]
    sizes = priors[:, 2:] * torch.exp(loc[:, 2:] * variance[1])
    top_left = centres - sizes / 2
    return torch.cat((top_left, sizes + top_left), dim=1)


def decode_landmarks(landmarks: torch.Tensor, priors: torch.Tensor,
                     variance: tuple[float, float] = PRIORS.variance) -> torch.Tensor:
    """retinaface_utils.decode_landm: [N, 10] regressions -> five relative (x, y) points, flattened."""
    points = landmarks.reshape(-1, 5, 2)
    return (priors[:, None, :2] + points * variance[0] * priors[:, None, 2:]).reshape(-1, 10)


def network_dtype(network: object) -> torch.dtype:
    """The dtype a network computes in: its parameters' (float32 for a parameterless callable)."""
    if isinstance(network, nn.Module):
        for parameter in network.parameters():
            return parameter.dtype
    return torch.float32


def network_input(image_rgb: torch.Tensor) -> torch.Tensor:
    """uint8 RGB [3, H, W] -> RetinaFace's float32 input [1, 3, H, W]: BGR, minus the mean, unscaled."""
    mean = torch.tensor(BGR_MEAN, dtype=torch.float32, device=image_rgb.device).view(3, 1, 1)
    return (image_rgb.flip(0).float() - mean)[None]


def decode_detections(loc: torch.Tensor, logits: torch.Tensor, landmarks: torch.Tensor, height: int, width: int,
                      params: DetectionParams = DetectionParams()) -> Faces:
    """One image's network outputs ([N, 4], [N, 2], [N, 10]) -> the faces detect_faces returns."""
    priors = prior_boxes(height, width).to(loc.device)
    scale = torch.tensor([width, height] * 5, dtype=torch.float32, device=loc.device)
    boxes = decode_boxes(loc.float(), priors) * scale[:4]
    points = decode_landmarks(landmarks.float(), priors) * scale
    scores = face_scores(logits.float())
    candidates = torch.nonzero(scores > params.conf_threshold).flatten().cpu()
    boxes, points, scores = boxes.cpu()[candidates], points.cpu()[candidates], scores.cpu()[candidates]
    # On the CPU as facexlib: the candidates are few (scores above 0.97), the result the same on every device.
    keep = nms_in_numpy_order(boxes, scores, params.nms_threshold)
    return Faces(boxes[keep], scores[keep], points[keep].reshape(-1, 5, 2))


def _eyes_far_enough(faces: Faces, threshold: float | None) -> list[int]:
    if threshold is None:
        return list(range(len(faces)))
    eye_dist = (faces.landmarks[:, 0] - faces.landmarks[:, 1]).norm(dim=1)  # float32, as np.linalg.norm of float32
    return [i for i in range(len(faces)) if not eye_dist[i] < threshold]


def center_face(faces: Faces, height: int, width: int) -> int:
    """get_center_face: the face whose box centre (float32, as the detector's array) is nearest the
    image centre in float64; the first one on ties."""
    centres = ((faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2).double()
    distances = (centres - torch.tensor([width / 2, height / 2], dtype=torch.float64)).norm(dim=1)
    return int(torch.argmin(distances))


@torch.inference_mode()
def detect_faces(detector: nn.Module, image_rgb: torch.Tensor, params: DetectionParams = DetectionParams(),
                 only_center_face: bool = False) -> Faces:
    """FaceRestoreHelper.get_face_landmarks_5 with facexlib's RetinaFace on uint8 RGB [3, H, W].

    The network runs on the image's device in the detector's dtype; the decoding in float32. Returns
    the faces in input pixels: all of them, or only the one nearest the centre.
    """
    height, width = image_rgb.shape[-2:]
    scale = 1.0
    if params.resize is not None:
        scale = min(height, width) / params.resize
        image_rgb = cv2_resize_lanczos4(image_rgb, (int(height / scale), int(width / scale)))
    dtype = network_dtype(detector)
    out = detector(network_input(image_rgb).to(dtype))
    faces = decode_detections(out.loc[0], out.logits[0], out.landmarks[0], *image_rgb.shape[-2:], params)
    if scale != 1.0:  # numpy float32 arrays times a Python float: float32 products
        factor = torch.tensor(scale, dtype=torch.float32)
        faces = Faces(faces.boxes * factor, faces.scores, faces.landmarks * factor)
    faces = faces.select(_eyes_far_enough(faces, params.eye_dist_threshold))
    if only_center_face and len(faces):
        faces = faces.select([center_face(faces, height, width)])
    return faces
