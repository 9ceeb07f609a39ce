"""The recognizer network: a ResNet-18 trunk reads the image, a Transformer decoder writes tokens.

Encoder: the first ``config.encoder_stages`` stages of ResNet-18 (one input channel; torchvision's
layout, built by ``model.resnet`` without importing torchvision; ``config.encoder_stride`` 8 runs
the third stage without downsampling, for finer feature cells), a 1x1 convolution to
``d_model``, a 2-D sinusoidal position code, flattened row by row into a sequence.
Images in a batch are padded at the right/bottom; the encoder zeroes the padded cells before
every convolution, so an image gives the same features alone as inside a padded batch (training
uses batches, the desktop app single snips).  Feature cells lying entirely in padding are masked
out of the decoder's cross-attention.

Decoder: token embedding plus learned positions, ``config.decoder_layers`` pre-norm layers
(causal self-attention, cross-attention to the image, feed-forward), output projection tied to
the embedding.  ``decode`` runs a whole target sequence at once (teacher forcing); the pair
``start_decoding`` / ``decode_step`` emits one token at a time through a key/value cache, with the
image's cross-attention keys/values computed once per sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig
from .resnet import BasicBlock, ResNet18

# ----------------------------------------------------------------------------- encoder


def _valid_cells(sizes: torch.Tensor, stride: int, height: int, width: int) -> torch.Tensor:
    """(B, H, W) bool: True where a feature cell at this stride covers part of the real image."""
    rows = torch.arange(height, device=sizes.device)
    cols = torch.arange(width, device=sizes.device)
    h = (sizes[:, 0] + stride - 1) // stride
    w = (sizes[:, 1] + stride - 1) // stride
    return (rows[None, :, None] < h[:, None, None]) & (cols[None, None, :] < w[:, None, None])


def _sinusoid(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """(length, dim) sin/cos code of positions 0..length-1."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    angles = position * freq[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def positional_encoding_2d(height: int, width: int, d_model: int, device: torch.device) -> torch.Tensor:
    """(d_model, H, W): the first half codes the row, the second half the column."""
    half = d_model // 2
    rows = _sinusoid(height, half, device)[:, None, :].expand(height, width, half)
    cols = _sinusoid(width, half, device)[None, :, :].expand(height, width, half)
    return torch.cat([rows, cols], dim=2).permute(2, 0, 1)


class Encoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        trunk = ResNet18()
        self.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.bn1, self.relu, self.maxpool = trunk.bn1, trunk.relu, trunk.maxpool
        self.layers = nn.ModuleList(getattr(trunk, f"layer{i}") for i in range(1, config.encoder_stages + 1))
        channels = 64 * 2 ** (config.encoder_stages - 1)
        self.proj = nn.Conv2d(channels, config.d_model, kernel_size=1)
        self.norm = nn.LayerNorm(config.d_model)
        self.stride = 2 ** (config.encoder_stages + 1)
        self._keep_resolution(config.encoder_stride or self.stride)

    def _keep_resolution(self, stride: int) -> None:
        """Run the last stages' downsampling blocks at stride 1 until the features have
        ``stride``: finer cells with the very same weights (convolution strides are not weights)."""
        if stride < 4 or stride > self.stride or stride & (stride - 1):
            raise ValueError(f"ModelConfig.encoder_stride must be a power of 2 from 4 to {self.stride} "
                             f"for {len(self.layers)} stages, not {stride}")
        for layer in reversed(self.layers):
            if self.stride == stride:
                break
            block = layer[0]
            if block.conv1.stride[0] == 2:
                block.conv1.stride = (1, 1)
                block.downsample[0].stride = (1, 1)
                self.stride //= 2

    def forward(self, images: torch.Tensor, sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sizes = sizes.to(images.device)
        # A batch of one (or of equal sizes) has no padding: skip the masking work.
        padded = bool((sizes[:, 0] < images.shape[2]).any() or (sizes[:, 1] < images.shape[3]).any())

        def zero_padding(x: torch.Tensor, stride: int) -> torch.Tensor:
            if not padded:
                return x
            keep = _valid_cells(sizes, stride, x.shape[2], x.shape[3])
            return x * keep[:, None].to(x.dtype)

        x = self.relu(self.bn1(self.conv1(zero_padding(images, 1))))
        # Values are >= 0 after ReLU, so the zeroed padding never wins a max; the pooling
        # windows straddling the border still reach real cells, hence the second zeroing.
        x = zero_padding(self.maxpool(zero_padding(x, 2)), 4)
        stride = 4
        for layer in self.layers:
            for block in layer:
                x, stride = self._block(block, x, stride, zero_padding)
        x = self.proj(x)
        batch, dim, height, width = x.shape
        x = x + positional_encoding_2d(height, width, dim, x.device).to(x.dtype)
        memory = self.norm(x.flatten(2).transpose(1, 2))
        pad_mask = ~_valid_cells(sizes, self.stride, height, width).flatten(1)
        return memory, pad_mask

    @staticmethod
    def _block(block: BasicBlock, x: torch.Tensor, stride: int, zero_padding) -> tuple[torch.Tensor, int]:
        """A ResNet BasicBlock, with the padding zeroed before its second convolution."""
        stride *= block.conv1.stride[0]
        identity = x if block.downsample is None else block.downsample(x)
        out = block.relu(block.bn1(block.conv1(x)))
        out = block.bn2(block.conv2(zero_padding(out, stride)))
        return zero_padding(block.relu(out + identity), stride), stride


# ----------------------------------------------------------------------------- decoder


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, nhead: int, dropout: float):
        super().__init__()
        self.nhead, self.dropout = nhead, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, cache: "LayerCache | None" = None) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.nhead, dim // self.nhead).permute(2, 0, 3, 1, 4)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.dropout if self.training else 0.0)
        else:
            # One new position per call: it may look at every cached position, so no mask.
            if length != 1:
                raise ValueError("cached decoding takes one token per step")
            if cache.k is not None:
                k, v = torch.cat([cache.k, k], dim=2), torch.cat([cache.v, v], dim=2)
            cache.k, cache.v = k, v
            y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(batch, length, dim))


class CrossAttention(nn.Module):
    def __init__(self, d_model: int, nhead: int, dropout: float):
        super().__init__()
        self.nhead, self.dropout = nhead, dropout
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the image features: computed once per sequence."""
        batch, length, dim = memory.shape
        k, v = self.kv(memory).view(batch, length, 2, self.nhead, dim // self.nhead).permute(2, 0, 3, 1, 4)
        return k, v

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor],
                attn_mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, dim = x.shape
        q = self.q(x).view(batch, length, self.nhead, dim // self.nhead).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=attn_mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(batch, length, dim))


class DecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        d = config.d_model
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn = SelfAttention(d, config.nhead, config.dropout)
        self.cross_attn = CrossAttention(d, config.nhead, config.dropout)
        self.ff = nn.Sequential(nn.Linear(d, config.dim_feedforward), nn.GELU(),
                                nn.Linear(config.dim_feedforward, d))
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, memory_kv: tuple[torch.Tensor, torch.Tensor],
                attn_mask: torch.Tensor | None, cache: "LayerCache | None" = None) -> torch.Tensor:
        if not self.training:  # the same without the dropout calls: a decoder step is ~90 small ops
            x = x + self.self_attn(self.norm1(x), cache)
            x = x + self.cross_attn(self.norm2(x), memory_kv, attn_mask)
            return x + self.ff(self.norm3(x))
        x = x + self.drop(self.self_attn(self.norm1(x), cache))
        x = x + self.drop(self.cross_attn(self.norm2(x), memory_kv, attn_mask))
        return x + self.drop(self.ff(self.norm3(x)))


@dataclass
class LayerCache:
    """Self-attention keys/values of the positions decoded so far, (N, heads, T, head_dim)."""
    k: torch.Tensor | None = None
    v: torch.Tensor | None = None


@dataclass
class DecoderCache:
    """Everything one incremental decoding step needs; rows are sequences (items or beams)."""
    memory_kv: list[tuple[torch.Tensor, torch.Tensor]]
    attn_mask: torch.Tensor | None   # (N, 1, 1, S) True = attend; None when nothing is padded
    layers: list[LayerCache]
    length: int = 0                  # positions decoded so far

    def select(self, index: torch.Tensor) -> "DecoderCache":
        """The cache of rows ``index`` (in that order): drops finished rows, reorders beams."""
        pick = lambda t: None if t is None else t.index_select(0, index)  # noqa: E731
        return DecoderCache(
            memory_kv=[(pick(k), pick(v)) for k, v in self.memory_kv],
            attn_mask=pick(self.attn_mask),
            layers=[LayerCache(pick(c.k), pick(c.v)) for c in self.layers],
            length=self.length,
        )


def _attention_mask(memory_pad_mask: torch.Tensor) -> torch.Tensor | None:
    if not bool(memory_pad_mask.any()):
        return None
    return ~memory_pad_mask[:, None, None, :]


# ----------------------------------------------------------------------------- the model


class Im2LatexModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.vocab_size <= 4:
            raise ValueError("ModelConfig.vocab_size must be set to the vocabulary size")
        if not 1 <= config.encoder_stages <= 4:
            raise ValueError("ModelConfig.encoder_stages must be between 1 and 4")
        if config.d_model % 4 or config.d_model % config.nhead:
            raise ValueError("ModelConfig.d_model must be a multiple of 4 and of nhead")
        self.config = config
        self.encoder = Encoder(config)
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.max_len, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.decoder_layers))
        self.norm = nn.LayerNorm(config.d_model)
        for module in [self.tok_emb, self.pos_emb, *self.layers]:
            module.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def encode(self, images: torch.Tensor, sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image features (B, S, D) and their padding mask (B, S), True = padding."""
        return self.encoder(images, sizes)

    def forward(self, images: torch.Tensor, sizes: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits (B, T, V) for the next token after each of ``tgt_in`` (B, T)."""
        memory, pad_mask = self.encode(images, sizes)
        return self.decode(tgt_in, memory, pad_mask)

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, memory_pad_mask: torch.Tensor) -> torch.Tensor:
        """Run the decoder over whole sequences at once (training, and the uncached reference)."""
        if tgt_in.shape[1] > self.config.max_len:
            raise ValueError(f"sequence of {tgt_in.shape[1]} tokens exceeds max_len {self.config.max_len}")
        attn_mask = _attention_mask(memory_pad_mask)
        x = self._embed(tgt_in, start=0)
        for layer in self.layers:
            x = layer(x, layer.cross_attn.memory_kv(memory), attn_mask)
        return self._logits(x)

    def start_decoding(self, memory: torch.Tensor, memory_pad_mask: torch.Tensor) -> DecoderCache:
        """A fresh cache holding the image's cross-attention keys/values for every layer."""
        return DecoderCache(
            memory_kv=[layer.cross_attn.memory_kv(memory) for layer in self.layers],
            attn_mask=_attention_mask(memory_pad_mask),
            layers=[LayerCache() for _ in self.layers],
        )

    def decode_step(self, tokens: torch.Tensor, cache: DecoderCache) -> torch.Tensor:
        """Logits (N, V) of the token after ``tokens`` (N,), the newest token of each row; updates ``cache``."""
        if cache.length >= self.config.max_len:
            raise ValueError(f"cannot decode past max_len {self.config.max_len}")
        x = self._embed(tokens[:, None], start=cache.length)
        for layer, layer_cache, kv in zip(self.layers, cache.layers, cache.memory_kv):
            x = layer(x, kv, cache.attn_mask, layer_cache)
        cache.length += 1
        return self._logits(x)[:, 0]

    def _embed(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        x = self.tok_emb(tokens) + self.pos_emb.weight[start:start + tokens.shape[1]]  # rows = positions
        return self.drop(x) if self.training else x

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.norm(x), self.tok_emb.weight)


class _SkipRandomFills(torch.overrides.TorchFunctionMode):
    """Turns the in-place random fills of weight initialization into no-ops.

    On the meta device they are pointless, and not free: torch runs their meta versions through
    ``torch._refs``, whose first use imports ``torch._dynamo`` (and sympy, triton: seconds and
    some 200 MB of resident memory in the app)."""

    SKIPPED = frozenset({torch.Tensor.normal_, torch.Tensor.uniform_, nn.init.normal_, nn.init.uniform_,
                         nn.init.trunc_normal_, nn.init.kaiming_normal_, nn.init.kaiming_uniform_,
                         nn.init.xavier_normal_, nn.init.xavier_uniform_})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.SKIPPED:
            return args[0] if args else kwargs["tensor"]  # the tensor to fill, unchanged
        return func(*args, **(kwargs or {}))


def meta_model(config: ModelConfig) -> Im2LatexModel:
    """The network with no storage and no initialization (meta tensors), for loading weights into
    with ``load_state_dict(..., assign=True)``: no time spent on random weights about to be replaced."""
    with torch.device("meta"), _SkipRandomFills():
        return Im2LatexModel(config)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable values (shared weights counted once)."""
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":  # python -m model.network: the size of the default network
    default = ModelConfig(vocab_size=600)
    print(f"default ModelConfig with a 600-token vocabulary: {count_parameters(Im2LatexModel(default)):,} parameters")
