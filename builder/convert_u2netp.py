"""Turn rembg's `u2netp.onnx` into U^2-Net-p's published state-dict format, at image build time.

U^2-Net's own `u2netp.pth` is published only on Google Drive (no pinned, hash-published HTTPS copy),
while rembg publishes `u2netp.onnx` as a GitHub release asset with a known SHA-256, and this worker's
u2netp follows rembg (its parity oracle, parity/u2netp-real, is rembg's ONNX). The ONNX was exported in
eval mode, so each conv+BatchNorm pair is one Conv whose weights have the BatchNorm folded in. This
writes those convolutions into U2Net("lite") with every BatchNorm set to the identity (weight 1, bias
0, mean 0, var 1 - eps), which computes what the ONNX computes, in the format the registry loads.

The ONNX names most folded weights by number, so convolutions are matched by order: the exporter
writes the graph in the order the forward pass ran, which is the order our module's convolutions run.
The file is read with a small protobuf decoder (the few ONNX fields needed), so the build needs no
`onnx` package.

    python -m builder.convert_u2netp SRC.onnx [OUT_DIR]   (OUT_DIR defaults to WEIGHTS_DIR)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from models import registry
from worker import config

NAME = "u2netp"
ONNX_FLOAT = 1  # TensorProto.DataType.FLOAT
# Field numbers of onnx.proto3: ModelProto.graph; GraphProto.node, .initializer; NodeProto.input,
# .op_type; TensorProto.dims, .data_type, .float_data, .name, .raw_data.
MODEL_GRAPH = 7
GRAPH_NODE, GRAPH_INITIALIZER = 1, 5
NODE_INPUT, NODE_OP_TYPE = 1, 4
TENSOR_DIMS, TENSOR_DATA_TYPE, TENSOR_FLOAT_DATA, TENSOR_NAME, TENSOR_RAW_DATA = 1, 2, 4, 8, 9


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of one protobuf message: ints for varints, bytes for everything else."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = data[pos:pos + size], pos + size
        else:
            raise ValueError(f"protobuf wire type {wire} is not used by ONNX files")
        yield number, value


def _packed_varints(value: int | bytes) -> list[int]:
    if isinstance(value, int):
        return [value]
    numbers, pos = [], 0
    while pos < len(value):
        number, pos = _varint(value, pos)
        numbers.append(number)
    return numbers


def read_tensor(data: bytes) -> tuple[str, torch.Tensor]:
    name, dims, dtype, raw, floats = "", [], None, None, b""
    for number, value in fields(data):
        if number == TENSOR_DIMS:
            dims += _packed_varints(value)
        elif number == TENSOR_DATA_TYPE:
            dtype = value
        elif number == TENSOR_NAME:
            name = value.decode()
        elif number == TENSOR_RAW_DATA:
            raw = value
        elif number == TENSOR_FLOAT_DATA:
            floats += value
    if dtype != ONNX_FLOAT:
        raise ValueError(f"initializer {name}: data type {dtype}, expected float32")
    payload = raw if raw is not None else floats
    return name, torch.frombuffer(bytearray(payload), dtype=torch.float32).reshape(dims)


def read_convolutions(path: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, bias) of every Conv node of an ONNX model, in graph order."""
    graph = next(value for number, value in fields(path.read_bytes()) if number == MODEL_GRAPH)
    tensors: dict[str, torch.Tensor] = {}
    convs: list[list[str]] = []
    for number, value in fields(graph):
        if number == GRAPH_INITIALIZER:
            name, tensor = read_tensor(value)
            tensors[name] = tensor
        elif number == GRAPH_NODE:
            node = list(fields(value))
            if any(n == NODE_OP_TYPE and v == b"Conv" for n, v in node):
                convs.append([v.decode() for n, v in node if n == NODE_INPUT])
    return [(tensors[inputs[1]], tensors[inputs[2]]) for inputs in convs]


def convolutions_in_call_order(model: nn.Module) -> list[str]:
    """Module names of the Conv2d layers in the order a forward pass runs them."""
    names = {module: name for name, module in model.named_modules()}
    order: list[str] = []
    hooks = [m.register_forward_hook(lambda module, *_: order.append(names[module]))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.inference_mode():
        model(torch.zeros(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    return order


def state_dict_from_onnx(source: Path) -> dict[str, torch.Tensor]:
    """U2Net("lite")'s state dict holding the ONNX's (BatchNorm-folded) convolutions, BatchNorm as identity."""
    model = registry.get_spec(NAME).build().eval()
    order = convolutions_in_call_order(model)
    convolutions = read_convolutions(source)
    if len(convolutions) != len(order):
        raise ValueError(f"{source}: {len(convolutions)} Conv nodes, U^2-Net-p runs {len(order)} convolutions")
    state = model.state_dict()
    for name, (weight, bias) in zip(order, convolutions):
        if weight.shape != state[f"{name}.weight"].shape or bias.shape != state[f"{name}.bias"].shape:
            raise ValueError(f"{source}: the Conv for {name} has shape {tuple(weight.shape)}, expected "
                             f"{tuple(state[f'{name}.weight'].shape)}")
        state[f"{name}.weight"], state[f"{name}.bias"] = weight, bias
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            state[f"{name}.weight"] = torch.ones_like(module.weight)
            state[f"{name}.bias"] = torch.zeros_like(module.bias)
            state[f"{name}.running_mean"] = torch.zeros_like(module.running_mean)
            state[f"{name}.running_var"] = torch.full_like(module.running_var, 1 - module.eps)
    return state


def convert(source: Path, out_dir: Path) -> Path:
    """Write WEIGHTS_DIR/u2netp.pth from rembg's ONNX at `source` (atomically); return its path."""
    target = out_dir / registry.get_spec(NAME).weights.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    state = state_dict_from_onnx(source)
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(handle)
    torch.save(state, partial)
    os.replace(partial, target)
    registry.load(NAME, weights_dir=out_dir)  # loads strictly through the worker's own loader
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m builder.convert_u2netp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="rembg's u2netp.onnx")
    parser.add_argument("out_dir", type=Path, nargs="?", help="output folder (default: WEIGHTS_DIR)")
    args = parser.parse_args(argv)
    print(convert(args.source, args.out_dir or config.read_settings().weights_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
