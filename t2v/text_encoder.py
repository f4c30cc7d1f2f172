"""OpenCLIP ViT-H-14 text tower, "penultimate" layer then ln_final (ModelScope's FrozenOpenCLIPEmbedder).

Built from open_clip's own Transformer and LayerNorm classes; the tokenizer is open_clip's bundled BPE
(SOT/EOT, lower-cased, padded with id 0 to 77 tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import open_clip
import torch
from open_clip.transformer import LayerNorm, Transformer
from torch import nn

from t2v.config import TextConfig


@dataclass(frozen=True)
class Tokens:
    """Token ids [n, context] and, per prompt, whether it was cut to fit the context."""

    ids: torch.Tensor
    truncated: tuple[bool, ...]


class Tokenizer:
    """open_clip's SimpleTokenizer with truncation reporting."""

    def __init__(self, context_length: int = 77):
        self.context_length = context_length
        self._bpe = open_clip.SimpleTokenizer(context_length=context_length)

    def token_count(self, text: str) -> int:
        """Number of tokens including SOT and EOT (before truncation)."""
        return len(self._bpe.encode(text)) + 2

    def __call__(self, texts: list[str]) -> Tokens:
        """Tokenize, pad with 0, cut over-long prompts and force EOT last (open_clip.tokenize semantics)."""
        ids = self._bpe(texts, context_length=self.context_length)
        return Tokens(ids, tuple(self.token_count(t) > self.context_length for t in texts))


class TextEncoder(nn.Module):
    """Token ids -> [n, 77, width] embeddings from block `layers - skip_last_layers - 1`, then ln_final."""

    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.cfg = cfg
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.width)
        self.positional_embedding = nn.Parameter(torch.empty(cfg.context_length, cfg.width))
        # only the blocks that are used: the penultimate output skips the last block(s)
        self.transformer = Transformer(cfg.width, cfg.layers - cfg.skip_last_layers, cfg.heads,
                                       mlp_ratio=cfg.mlp_ratio, batch_first=True)
        self.ln_final = LayerNorm(cfg.width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(ids) + self.positional_embedding  # [n, 77, width]
        n = x.shape[1]
        causal = torch.full((n, n), float("-inf"), device=x.device, dtype=x.dtype).triu_(1)  # as open_clip's mask
        x = self.transformer(x, attn_mask=causal)
        return self.ln_final(x)

