"""Swin Transformer v1 (Liu et al. 2021) as the dense-prediction backbone of BiRefNet.

Module names follow the detection/segmentation variant that BiRefNet ships (models/backbones/swin_v1.py,
from Swin-Transformer-Object-Detection), so its published keys (`layers.{i}.blocks.{j}.attn.qkv`,
`norm0`..`norm3`, ...) load unchanged. Differences from timm's classification Swin that matter here:
inputs of any size are padded (PatchEmbed to multiples of the patch size, each block to multiples of
the window after norm1, PatchMerging to even sizes), windows never shrink below `window_size`, and
every stage's pre-downsampling output goes through its own LayerNorm `norm{i}`.

Tokens stay in a (B, H, W, C) layout throughout, so the stage outputs permuted to (B, C, H, W) are
already channels_last in memory.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Added to attention logits between tokens of different regions of a shifted window (the value of the
# original Swin and RMBG-2.0; later BiRefNet code uses -inf, which gives the same softmax up to 1e-43).
SHIFT_MASK_FILL = -100.0


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nH * nW, window * window, C), windows in row-major order per image."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of `window_partition`: (B * nH * nW, window * window, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def relative_position_index(window: int) -> torch.Tensor:
    """For each pair of tokens in a window, the row of the relative-position bias table it reads."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def shifted_window_mask(hp: int, wp: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """(nW, N, N) additive mask that keeps a shifted window's regions from attending to each other.

    The padded (hp, wp) grid is cut into 3 x 3 regions by the lines at -window and -shift; tokens of
    the same region get 0, others SHIFT_MASK_FILL (as the nine-slice loop of the original does).
    """

    def region(n: int) -> torch.Tensor:
        idx = torch.arange(n, device=device)
        return (idx >= n - window).long() + (idx >= n - shift).long()

    ids = (region(hp)[:, None] * 3 + region(wp)[None, :]).float()
    ids = window_partition(ids[None, :, :, None], window).squeeze(-1)
    diff = ids[:, None, :] - ids[:, :, None]
    return torch.zeros_like(diff).masked_fill_(diff != 0, SHIFT_MASK_FILL)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative-position bias."""

    def __init__(self, dim: int, window: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        # Persistent: the published checkpoints store it (int64), so it must be a key of the module too.
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B * nW, N, C); mask: (nW, N, N) additive shift mask or None."""
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, self.num_heads).permute(2, 0, 1).to(q.dtype)
        if mask is None:
            attn_mask = bias.unsqueeze(0)  # broadcast over all windows without a copy
        else:
            attn_mask = bias.unsqueeze(0) + mask.to(q.dtype).unsqueeze(1)  # (nW, heads, N, N)
            attn_mask = attn_mask.repeat(bw // mask.shape[0], 1, 1, 1)
        # SDPA's default scale is head_dim ** -0.5, the scale of Swin's qk_scale=None.
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x: (B, H, W, C); mask: the stage's shift mask (used only when this block shifts)."""
        _, h, w, _ = x.shape
        y = self.norm1(x)
        # Padding comes after norm1, with zeros, and padded tokens take part in attention unmasked.
        pad_b, pad_r = -h % self.window, -w % self.window
        if pad_b or pad_r:
            y = F.pad(y, (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = h + pad_b, w + pad_r
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, self.window), mask if self.shift else None)
        y = window_reverse(y, self.window, hp, wp)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        if pad_b or pad_r:
            y = y[:, :h, :w, :]
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 neighbourhood -> one token with twice the channels."""

    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w, _ = x.shape
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        # Order (even row, even col), (odd, even), (even, odd), (odd, odd), as the checkpoints expect.
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class BasicLayer(nn.Module):
    """One stage: `depth` blocks alternating plain and shifted windows, then optional PatchMerging."""

    def __init__(self, dim: int, depth: int, num_heads: int, window: int, downsample: bool):
        super().__init__()
        self.window = window
        self.shift = window // 2
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, num_heads, window, shift=0 if i % 2 == 0 else self.shift) for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns the stage output (B, H, W, C) and its downsampled version (or None in the last stage)."""
        _, h, w, _ = x.shape
        mask = None
        if len(self.blocks) > 1:
            hp, wp = h + (-h % self.window), w + (-w % self.window)
            mask = shifted_window_mask(hp, wp, self.window, self.shift, x.device)
        for block in self.blocks:
            x = block(x, mask)
        return x, self.downsample(x) if self.downsample is not None else None


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, embed_dim: int, in_channels: int = 3):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, H/4, W/4, C); right/bottom zero padding to multiples of the patch size."""
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            x = F.pad(x, (0, -w % self.patch_size, 0, -h % self.patch_size))
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class SwinTransformer(nn.Module):
    """Four-stage Swin v1 feature extractor; forward returns the normalised stage outputs, (B, C_i, H_i, W_i)."""

    def __init__(
        self,
        embed_dim: int,
        depths: tuple[int, ...],
        num_heads: tuple[int, ...],
        window_size: int,
        patch_size: int = 4,
    ):
        super().__init__()
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        self.num_features = [embed_dim * 2**i for i in range(len(depths))]
        self.layers = nn.ModuleList(
            BasicLayer(self.num_features[i], depths[i], num_heads[i], window_size, downsample=i < len(depths) - 1)
            for i in range(len(depths))
        )
        for i, dim in enumerate(self.num_features):
            self.add_module(f"norm{i}", nn.LayerNorm(dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.patch_embed(x)
        outs = []
        for i, layer in enumerate(self.layers):
            out, x = layer(x)
            # A permuted view, no copy: (B, C, H, W) with channels_last strides.
            outs.append(getattr(self, f"norm{i}")(out).permute(0, 3, 1, 2))
        return tuple(outs)


# The configurations BiRefNet builds (models/backbones/swin_v1.py: swin_v1_t / swin_v1_l).
SWIN_CONFIGS: dict[str, dict] = {
    "swin_v1_t": dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7),
    "swin_v1_l": dict(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48), window_size=12),
}


def swin(name: str) -> SwinTransformer:
    return SwinTransformer(**SWIN_CONFIGS[name])
