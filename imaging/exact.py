"""Fused multiply-add with one rounding, on any device.

OpenCV's AVX2 builds contract `a*b + c` into FMA instructions in several loops whose results the face
paste-back checks bit for bit (warpAffine's coordinates and interpolation, GaussianBlur's row pass).
torch.addcmul is a fused multiply-add on the CPU (and is expected to be on CUDA, where nvcc contracts
its a + b*c), but nothing promises it, so `fma` uses it only where a one-time check on the device
shows it rounds once, and otherwise emulates it exactly:
  float32: a*b is exact in float64 (24 + 24 bits), so one float64 add and a rounding to float32 give
           fma except where the float64 sum lands exactly on a float32 rounding midpoint (about one
           operation in 2^29; accepted).
  float64: Dekker's exact product, then the correctly rounded sum of three doubles with the
           round-to-odd step of Boldo & Melquiond ("Emulation of FMA and correctly rounded sums:
           proved algorithms using rounding to odd", IEEE TC 2008).
"""
from __future__ import annotations

from functools import lru_cache

import torch

_SPLITTER = 134217729.0  # 2^27 + 1: Veltkamp's split of a double into two 26-bit halves


def _two_sum(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c = _SPLITTER * a
    high = c - (c - a)
    return high, a - high


def _two_product(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _round_to_odd_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b rounded to odd: the nearest double, moved one ulp towards the exact sum when inexact and even."""
    s, err = _two_sum(a, b)
    inexact_even = (err != 0) & ((s.view(torch.int64) & 1) == 0)
    towards = torch.copysign(torch.tensor(float("inf"), dtype=s.dtype, device=s.device), err)
    return torch.where(inexact_even, torch.nextafter(s, towards), s)


def _sum3(p: torch.Tensor, e: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """p + e + c correctly rounded, where p + e is an exact product: (uh, ul) = c + e exactly,
    (th, tl) = p + uh exactly, then RN(th + RO(tl + ul))."""
    uh, ul = _two_sum(c, e)
    th, tl = _two_sum(p, uh)
    return th + _round_to_odd_sum(tl, ul)


def emulated_fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """a * b + c with a single rounding, from ordinary operations (see the module docstring)."""
    if a.dtype == torch.float32:
        return (a.double() * b.double() + c.double()).float()
    return _sum3(*_two_product(a, b), c)


@lru_cache(maxsize=None)
def native_fma_is_exact(device_type: str, dtype: torch.dtype) -> bool:
    """Whether torch.addcmul rounds once on this device type and dtype, checked on products whose
    plain rounding differs (c = -round(a*b) leaves only the product's rounding error)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(4096, generator=generator, dtype=torch.float64) * 100
    b = torch.randn(4096, generator=generator, dtype=torch.float64)
    a, b = a.to(dtype), b.to(dtype)
    c = torch.cat((-(a[:2048] * b[:2048]), torch.randn(2048, generator=generator, dtype=torch.float64).to(dtype)))
    device = torch.device(device_type)
    native = torch.addcmul(c.to(device), a.to(device), b.to(device)).cpu()
    return bool(torch.equal(native, emulated_fma(a, b, c)))


def fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """a * b + c with a single rounding, in the dtype of the (float32 or float64) operands."""
    if native_fma_is_exact(c.device.type, c.dtype):
        return torch.addcmul(c, a, b)
    return emulated_fma(a, b, c)


def fma_scalar(a: float, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """fma(a, b, c) for a Python float `a` (a filter tap), rounded first to b's dtype as OpenCV's taps are."""
    return fma(torch.tensor(a, dtype=b.dtype, device=b.device).expand_as(b), b, c)
