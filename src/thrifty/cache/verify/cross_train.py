"""Fine-tuning the bundled MiniLM into the verifier's cross-encoder (PyTorch, CPU, training only).

The network is all-MiniLM-L6-v2 read as a pair classifier: `[CLS] stored [SEP] query [SEP]` with
token types 0 / 1, mean pooling, one linear output. Its matrices stay frozen; each linear layer
learns a low-rank update (LoRA: `W + scale · B A`, rank `rank`, `B` starting at zero so training
starts from the pre-trained network), together with the biases, layer norms, position and
token-type embeddings and the head. The word-piece table is frozen and never stored, so the
result is ~0.9 M numbers (`cross.py` merges them back at load).

Binary cross-entropy on the train split's labels, AdamW, linear warm-up then decay, batches of
questions of similar length; the two questions' order is swapped at random per batch, so the model
learns a symmetric relation. Seeded; on two CPU cores one epoch over QQP's 43k train pairs takes
about 14 minutes (`torch.set_num_threads`, all cores by default).
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from thrifty.cache.verify.cross import LORA_A, LORA_B, MAX_TOKENS
from thrifty.cache.verify.pairs import Pair

if TYPE_CHECKING:
    import numpy as np

_LINEARS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)
_NORMS = ("attention.output.LayerNorm", "output.LayerNorm")


@dataclass(frozen=True)
class CrossSettings:
    epochs: float = 2.0
    rank: int = 16
    alpha: float = 32.0  # scale = alpha / rank
    learning_rate: float = 5e-4
    weight_decay: float = 0.01
    batch: int = 32
    warmup: float = 0.05  # share of the steps
    threads: int | None = None
    seed: int = 0
    limit: int | None = None  # train on the first `limit` pairs only (tests, quick looks)

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


def _network(weights: dict[str, np.ndarray], s: CrossSettings) -> Any:
    """The torch module; parameter names are the adapter's array names with '.' → '__'."""
    import torch
    from torch import nn
    from torch.nn import functional

    def frozen(name: str) -> torch.Tensor:
        return torch.tensor(weights[name])

    class Network(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.word = frozen("embeddings.word_embeddings.weight")
            self.layers = sorted({int(k.split(".")[2]) for k in weights if k.startswith("encoder.layer.")})
            self.train_names: list[str] = []
            self.frozen_w: dict[str, torch.Tensor] = {}
            for name in ("embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight"):
                self._param(name, frozen(name))
            for part in ("weight", "bias"):
                self._param(f"embeddings.LayerNorm.{part}", frozen(f"embeddings.LayerNorm.{part}"))
            for i in self.layers:
                for lin in _LINEARS:
                    p = f"encoder.layer.{i}.{lin}"
                    w = frozen(f"{p}.weight")
                    self.frozen_w[p] = w
                    self._param(f"{p}.bias", frozen(f"{p}.bias"))
                    self._param(p + LORA_A, torch.randn(s.rank, w.shape[1]) / math.sqrt(w.shape[1]))
                    self._param(p + LORA_B, torch.zeros(w.shape[0], s.rank))
                for norm in _NORMS:
                    for part in ("weight", "bias"):
                        name = f"encoder.layer.{i}.{norm}.{part}"
                        self._param(name, frozen(name))
            hidden = self.word.shape[1]
            self._param("head.weight", torch.zeros(1, hidden))
            self._param("head.bias", torch.zeros(1))

        def _param(self, name: str, value: torch.Tensor) -> None:
            self.register_parameter(name.replace(".", "__"), nn.Parameter(value.clone()))
            self.train_names.append(name)

        def p(self, name: str) -> torch.Tensor:
            return getattr(self, name.replace(".", "__"))  # type: ignore[no-any-return]

        def linear(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
            base = functional.linear(x, self.frozen_w[prefix], self.p(f"{prefix}.bias"))
            return base + (x @ self.p(prefix + LORA_A).T @ self.p(prefix + LORA_B).T) * s.scale

        def norm(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
            w, b = self.p(f"{prefix}.weight"), self.p(f"{prefix}.bias")
            return functional.layer_norm(x, (x.shape[-1],), w, b, eps=1e-12)

        def forward(self, ids: torch.Tensor, types: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            width = ids.shape[1]
            x = self.word[ids] + self.p("embeddings.position_embeddings.weight")[:width]
            x = self.norm(
                x + self.p("embeddings.token_type_embeddings.weight")[types], "embeddings.LayerNorm"
            )
            blocked = ((1 - mask.float()) * -1e9)[:, None, None, :]
            for i in self.layers:
                x = self.block(x, blocked, f"encoder.layer.{i}")
            m = mask.float()[..., None]
            pooled = (x * m).sum(1) / m.sum(1)
            return functional.linear(pooled, self.p("head.weight"), self.p("head.bias")).squeeze(-1)

        def block(self, x: torch.Tensor, blocked: torch.Tensor, p: str, heads: int = 12) -> torch.Tensor:
            batch, width, hidden = x.shape

            def split(t: torch.Tensor) -> torch.Tensor:
                return t.view(batch, width, heads, hidden // heads).transpose(1, 2)

            q, k, v = (split(self.linear(x, f"{p}.attention.self.{n}")) for n in ("query", "key", "value"))
            scores = q @ k.transpose(-1, -2) / math.sqrt(hidden // heads) + blocked
            context = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(batch, width, hidden)
            x = self.norm(
                x + self.linear(context, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm"
            )
            inner = functional.gelu(self.linear(x, f"{p}.intermediate.dense"))  # exact erf, as the graph
            return self.norm(x + self.linear(inner, f"{p}.output.dense"), f"{p}.output.LayerNorm")

    return Network()


def _batch(tokenizer: Any, pairs: Sequence[Pair], swap: bool) -> tuple[Any, Any, Any]:
    import numpy as np
    import torch

    texts = [(p.b, p.a) if swap else (p.a, p.b) for p in pairs]
    encodings = tokenizer.encode_batch(texts)
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    types, mask = np.zeros_like(ids), np.zeros_like(ids)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)], types[row, : len(e.ids)], mask[row, : len(e.ids)] = e.ids, e.type_ids, 1
    return torch.tensor(ids), torch.tensor(types), torch.tensor(mask)


def _batches(pairs: Sequence[Pair], size: int, rng: random.Random) -> list[list[int]]:
    """Batches of pairs of similar length (little padding), in random order."""
    length = [len(p.a) + len(p.b) + rng.random() * 30 for p in pairs]
    order = sorted(range(len(pairs)), key=length.__getitem__)
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    rng.shuffle(batches)
    return batches


def train_cross(pairs: Sequence[Pair], settings: CrossSettings | None = None) -> dict[str, np.ndarray]:
    """The adapter (array name → float16 array) fine-tuned on `pairs` (all of them: choose the split
    before calling)."""
    import numpy as np
    import torch
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    from thrifty.embed.encoder import bundled_model_dir

    s = settings or CrossSettings()
    pairs = list(pairs[: s.limit] if s.limit else pairs)
    if not pairs:
        raise ValueError("no pairs to train the cross-encoder on")
    torch.manual_seed(s.seed)
    if s.threads:
        torch.set_num_threads(s.threads)
    model_dir = bundled_model_dir()
    network = _network(load_file(str(model_dir / "model.safetensors")), s)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    steps = max(1, math.ceil(math.ceil(len(pairs) / s.batch) * s.epochs))
    optimizer = torch.optim.AdamW(network.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay)
    warm = max(1.0, s.warmup * steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warm) * max(0.0, 1.0 - step / steps)
    )
    rng, step, started = random.Random(s.seed), 0, time.monotonic()
    while step < steps:
        for chosen in _batches(pairs, s.batch, rng):
            if step >= steps:
                break
            batch = [pairs[i] for i in chosen]
            logits = network(*_batch(tokenizer, batch, swap=rng.random() < 0.5))
            labels = torch.tensor([float(p.duplicate) for p in batch])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % 200 == 0 or step == steps:
                elapsed = time.monotonic() - started
                print(
                    f"cross-encoder: step {step}/{steps}, loss {loss.item():.3f}, {elapsed:.0f} s",
                    file=sys.stderr,
                )
    return {name: network.p(name).detach().numpy().astype(np.float16) for name in network.train_names}
