#!/usr/bin/env python3
"""PyTorch eager reference for `tools/Benchmarks steps` (issue 27): the same shapes and step kinds, timed the same way.

A development tool, never needed by the product or CI: run it with Debian's python3-torch (`apt-get install -y
python3-torch`) and Debian's interpreter, /usr/bin/python3 (a python3 earlier on PATH, such as pyenv's, lacks the
package). Random weights and inputs (timing only), but the same FLOPs as the project's graphs:

- the LLM is the project's Llama (src/Models/Decoder: RMSNorm, rotate-half rotary embeddings, grouped-query attention
  with full [seq, seq] scores masked causally, SiLU-gated MLP, untied lm_head, no biases);
- hidden_states[l] is Hugging Face's: layers 0..l-1 run, plus the final norm when l is the last layer (the project's
  joint graphs build nothing after the head's layer);
- the head is src/Models/Head/EmbeddingHead.cs: Linear(hidden -> d_model), a stack of nn.TransformerDecoderLayer
  (post-norm, ReLU, batch first, dropout) with causal self-attention and cross-attention to the projected input
  itself (padding keys masked), no final norm, Linear(d_model -> encoder dim);
- alignment (src/Unlearning/UnlearningGraphs.cs): loss = -(masked mean of cos(head(h), window embedding)), the LLM
  frozen (no backward through it), the head in training mode; on cached hidden states h is an input;
- unlearning: loss = masked mean of relu(cos(head(h), target) - tau), the head frozen and without dropout, gradients
  for the embeddings and the layers below the head (and the final norm when the head reads the last layer);
- GA: minus the mean next-token cross-entropy; NPO: -(2/beta) mean logsigmoid(beta (ref - log p(sequence))), the
  reference log-probabilities an input; both train the whole LLM with AdamW;
- optimizers as the presets give them (src/Unlearning/Presets), gradient clipping by the global norm.

Each step kind: 3 warm-up steps, then the median of --steps timed steps (zero_grad, forward, backward, clipping,
optimizer step), at each thread count of --threads; the better thread count is printed per kind. The small model's
full training step (cross-entropy, AdamW, 4 x 256 tokens) is printed as tokens per second.

    python3 tools/steps_torch.py                       # both shapes, 21 steps, 1 and 2 threads
    python3 tools/steps_torch.py --shape toy --steps 3 --threads 1
"""
import argparse
import json
import math
import os
import platform
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "Unlearning", "Presets")
KINDS = ["align", "cached", "unlearn", "ga", "npo", "train"]
WARMUP = 3


def preset(name):
    """A built-in preset; its files allow whole-line // comments."""
    with open(os.path.join(PRESETS, name + ".json"), encoding="utf-8") as f:
        return json.loads("".join(line for line in f if not line.lstrip().startswith("//")))


def shapes():
    toy, paper = preset("toy"), preset("paper")
    return {
        # ToyPretrainingSettings' defaults; the toy world of seed 1 has 1,408 tokens.
        "toy": dict(llm=dict(hidden=128, layers=4, heads=4, kv_heads=2, intermediate=384, vocab=1408),
                    atu=toy, layer=toy["layers"][0], enc=384, batch=8, seq=64, ga="toy-ga", npo="toy-npo"),
        # TrainBenchmark.Small; the paper's head on the last layer.
        "small": dict(llm=dict(hidden=512, layers=4, heads=8, kv_heads=8, intermediate=1408, vocab=32000),
                      atu=paper, layer=4, enc=768, batch=4, seq=128, ga="rwku-llama3-ga", npo="rwku-llama3-npo"),
    }


class RmsNorm(nn.Module):
    def __init__(self, size, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads, self.kv_heads = c["heads"], c["kv_heads"]
        self.head_dim = c["hidden"] // c["heads"]
        self.q_proj = nn.Linear(c["hidden"], self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(c["hidden"], self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(c["hidden"], self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, c["hidden"], bias=False)

    def forward(self, x, cos, sin, attendable):
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        group = self.heads // self.kv_heads
        if group > 1:   # each key/value head serves `group` query heads in a row
            k = k[:, :, None].expand(b, self.kv_heads, group, s, self.head_dim).reshape(b, self.heads, s, self.head_dim)
            v = v[:, :, None].expand(b, self.kv_heads, group, s, self.head_dim).reshape(b, self.heads, s, self.head_dim)
        scores = torch.matmul(q, k.transpose(2, 3)) * (1 / math.sqrt(self.head_dim))
        scores = torch.where(attendable, scores, torch.tensor(torch.finfo(scores.dtype).min))
        context = torch.matmul(F.softmax(scores, dim=-1), v)
        return self.o_proj(context.transpose(1, 2).reshape(b, s, self.heads * self.head_dim))


class Mlp(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c["hidden"], c["intermediate"], bias=False)
        self.up_proj = nn.Linear(c["hidden"], c["intermediate"], bias=False)
        self.down_proj = nn.Linear(c["intermediate"], c["hidden"], bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm, self.self_attn = RmsNorm(c["hidden"]), Attention(c)
        self.post_attention_layernorm, self.mlp = RmsNorm(c["hidden"]), Mlp(c)

    def forward(self, x, cos, sin, attendable):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, attendable)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab"], c["hidden"])
        self.layers = nn.ModuleList(Layer(c) for _ in range(c["layers"]))
        self.norm = RmsNorm(c["hidden"])
        self.lm_head = nn.Linear(c["hidden"], c["vocab"], bias=False)   # the toy and small models are untied
        for m in self.modules():   # normal(0, 0.02) as the project's RandomInit
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def used_parameters(self, index):
        """The parameters hidden_states[index] depends on (what the project's truncated graph declares)."""
        params = list(self.embed_tokens.parameters())
        for layer in self.layers[:index]:
            params += list(layer.parameters())
        if index == len(self.layers):
            params += list(self.norm.parameters())
        return params

    def hidden_state(self, ids, index):
        """Hugging Face's hidden_states[index]: the layers below it, and the final norm for the last one."""
        s = ids.shape[1]
        head_dim = self.c["hidden"] // self.c["heads"]
        positions = torch.arange(s)
        inv_freq = 10000.0 ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        freqs = positions[:, None].float() * inv_freq[None, :]
        angles = torch.cat((freqs, freqs), dim=-1)
        cos, sin = angles.cos(), angles.sin()
        attendable = positions[None, :] <= positions[:, None]
        h = self.embed_tokens(ids)
        for layer in self.layers[:index]:
            h = layer(h, cos, sin, attendable)
        return self.norm(h) if index == len(self.layers) else h

    def logits(self, ids):
        return self.lm_head(self.hidden_state(ids, len(self.layers)))


class EmbeddingHead(nn.Module):
    def __init__(self, hidden, head, enc):
        super().__init__()
        d = head["d_model"]
        self.input_proj = nn.Linear(hidden, d)
        layer = nn.TransformerDecoderLayer(d, head["heads"], head["feed_forward"], head["dropout"], activation="relu",
                                           layer_norm_eps=head["layer_norm_eps"], batch_first=True, norm_first=False)
        self.decoder = nn.TransformerDecoder(layer, head["layers"])   # no final norm
        self.output_proj = nn.Linear(d, enc)

    def forward(self, h, token_mask):
        memory = self.input_proj(h)
        s = h.shape[1]
        causal = torch.triu(torch.ones(s, s, dtype=torch.bool), diagonal=1)   # True: masked
        x = self.decoder(memory, memory, tgt_mask=causal, memory_key_padding_mask=token_mask == 0)
        return self.output_proj(x)


def masked_mean(values, mask):
    return (values * mask).sum() / mask.sum().clamp(min=1e-12)


def next_token_log_probs(logits, ids):
    """log p(ids[:, t+1] | ..t) for t = 0..seq-2, from the log-softmax of every position (as the project's graph)."""
    log_probs = F.log_softmax(logits, dim=-1)
    labels = torch.cat((ids[:, 1:], ids[:, -1:]), dim=1)
    return log_probs.gather(2, labels.unsqueeze(2)).squeeze(2)[:, :-1]


def optimizer(kind, params, lr, weight_decay=0.0, momentum=0.0):
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def phase_optimizer(phase, params):
    return optimizer(phase["optimizer"], params, phase["learning_rate"], phase.get("weight_decay", 0.0), phase.get("momentum", 0.0)), \
        phase.get("max_grad_norm", 1.0)


def step_kind(kind, shape, batches=4):
    """(name, step function, trainable values, tokens per step) of a step kind, built afresh."""
    torch.manual_seed(1)
    c, atu = shape["llm"], shape["atu"]
    b, s, enc, layer = shape["batch"], shape["seq"], shape["enc"], shape["layer"]
    llm = Llama(c)
    for p in llm.parameters():
        p.requires_grad_(False)
    ids = [torch.randint(0, c["vocab"], (b, s)) for _ in range(batches)]
    ones = torch.ones(b, s)
    at = [0]

    def next_ids():
        at[0] = (at[0] + 1) % batches
        return ids[at[0]]

    if kind in ("align", "cached", "unlearn"):
        head = EmbeddingHead(c["hidden"], atu["head"], enc)
        windows = [torch.randn(b, s, enc) for _ in range(batches)]
        target = torch.randn(enc)
        if kind == "unlearn":
            head.eval()   # frozen, no dropout
            for p in head.parameters():
                p.requires_grad_(False)
            params = llm.used_parameters(layer)
            for p in params:
                p.requires_grad_(True)
            opt, clip = phase_optimizer(atu["unlearning"], params)
            tau = atu["stages"][0]["tau"] if atu["stages"] else 0.5

            def step():
                pred = head(llm.hidden_state(next_ids(), layer), ones)
                cos = F.cosine_similarity(pred, target.view(1, 1, -1).expand_as(pred), dim=-1)
                loss = masked_mean(F.relu(cos - tau), ones)
                masked_mean(cos, ones).item()   # the graph's mean_cosine output
                return loss
            name = "unlearning (frozen head)"
        else:
            head.train()
            params = list(head.parameters())
            opt, clip = phase_optimizer(atu["alignment"], params)
            cached = [torch.randn(b, s, c["hidden"]) for _ in range(batches)]

            def step():
                i = next_ids()
                if kind == "align":
                    with torch.no_grad():   # the LLM is frozen: the joint graph has no backward nodes for it
                        h = llm.hidden_state(i, layer)
                else:
                    h = cached[at[0]]
                pred = head(h, ones)
                mean_cos = masked_mean(F.cosine_similarity(pred, windows[at[0]], dim=-1), ones)
                return -mean_cos
            name = f"alignment recomputing hidden_states[{layer}]" if kind == "align" else "alignment on cached hidden states"
    elif kind in ("ga", "npo"):
        method = preset(shape[kind])
        params = list(llm.parameters())
        for p in params:
            p.requires_grad_(True)
        opt = optimizer("adamw", params, method["learning_rate"], method.get("weight_decay", 0.0))
        clip = method.get("max_grad_norm", 1.0)
        beta = method.get("beta", 0.2)
        reference = -(s - 1) * math.log(c["vocab"]) + torch.rand(b)

        def step():
            i = next_ids()
            log_probs = next_token_log_probs(llm.logits(i), i)
            mask = ones[:, :-1]
            if kind == "ga":
                return masked_mean(log_probs, mask)   # minus the cross-entropy
            policy = (log_probs * mask).sum(1)
            return -(2 / beta) * F.logsigmoid(beta * (reference - policy)).mean()
        name = f"{kind.upper()} (preset '{method['name']}', whole LLM)"
    else:   # the full training step of TrainBenchmark: 4 x 256 tokens, AdamW(1e-4, weight decay 0.01), clipping 1
        b, s = 4, 256
        ids = [torch.randint(0, c["vocab"], (b, s)) for _ in range(batches)]
        ones = torch.ones(b, s)
        params = list(llm.parameters())
        for p in params:
            p.requires_grad_(True)
        opt, clip = optimizer("adamw", params, 1e-4, 0.01), 1.0

        def step():
            i = next_ids()
            return -masked_mean(next_token_log_probs(llm.logits(i), i), ones[:, :-1])
        name = "training step (cross-entropy, AdamW), 4 x 256 tokens"

    def full_step():
        opt.zero_grad(set_to_none=True)
        loss = step()
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        value = loss.item()
        if not math.isfinite(value):
            raise RuntimeError(f"{name}: the loss is {value}")

    return name, full_step, sum(p.numel() for p in params), b * s


def median_seconds(full_step, steps):
    for _ in range(WARMUP):
        full_step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        full_step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_rate(n=1024, runs=8):
    """FLOP/s of the fastest of `runs` n x n x n float32 matrix products (after 2 warm-up runs): what torch's matrix
    products reach on this machine, to read its step times against."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    times = []
    for i in range(2 + runs):
        start = time.perf_counter()
        torch.matmul(a, b)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return 2 * n ** 3 / min(times)


def cpu_name():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="both", choices=["toy", "small", "both"])
    parser.add_argument("--kinds", default="all", help="comma-separated: " + ", ".join(KINDS) + " (train: small only), or all")
    parser.add_argument("--steps", type=int, default=21, help="timed steps per kind and thread count (after 3 warm-up steps)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (torch.set_num_threads)")
    a = parser.parse_args()
    kinds = KINDS if a.kinds == "all" else a.kinds.split(",")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown step kind {unknown[0]} (expected {', '.join(KINDS)} or all)")
    threads = [int(t) for t in a.threads.split(",")]
    chosen = ["toy", "small"] if a.shape == "both" else [a.shape]
    print(f"PyTorch {torch.__version__} eager, {cpu_name()}, {os.cpu_count()} logical processors; "
          f"median of {a.steps} steps after {WARMUP} warm-up steps, threads {', '.join(map(str, threads))}")
    blas = next((part.split("=", 1)[1] for part in torch.__config__.show().replace(",", " ").split() if part.startswith("BLAS_INFO=")), "unknown")
    rates = []
    for t in threads:
        torch.set_num_threads(t)
        rates.append(f"{gemm_rate() / 1e9:.1f} GFLOP/s at {t} thread{'s' if t > 1 else ''}")
    print(f"float32 GEMM 1024^3 (BLAS {blas}): {', '.join(rates)}")
    for shape_name, shape in shapes().items():
        if shape_name not in chosen:
            continue
        c = shape["llm"]
        print(f"\n{shape_name}: hidden {c['hidden']}, {c['layers']} layers, {c['heads']} heads ({c['kv_heads']} key/value), vocabulary {c['vocab']}; "
              f"preset '{shape['atu']['name']}': head on hidden_states[{shape['layer']}], {shape['atu']['head']['layers']} layer(s) of "
              f"d_model {shape['atu']['head']['d_model']}, encoder dim {shape['enc']}; batch {shape['batch']} x {shape['seq']}")
        for kind in kinds:
            if kind == "train" and shape_name != "small":
                continue
            rates = {}
            for t in threads:
                torch.set_num_threads(t)
                name, full_step, values, tokens = step_kind(kind, shape)
                rates[t] = 1 / median_seconds(full_step, a.steps)
            best = max(rates, key=rates.get)
            unit, scale = ("tokens/s", tokens) if kind == "train" else ("steps/s", 1)
            each = ", ".join(f"{rates[t] * scale:,.2f} {unit} at {t} thread{'s' if t > 1 else ''}" for t in threads)
            print(f"  {name}: {each}; better: {best} ({rates[best] * scale:,.2f} {unit}, {1000 / rates[best]:.2f} ms); {values:,} trainable values")


if __name__ == "__main__":
    main()
