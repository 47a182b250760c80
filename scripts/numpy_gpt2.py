#!/usr/bin/env python3
"""A GPT-2 forward pass in plain NumPy: an independent reference for the models this trainer exports.

What it is for: checking that a model written by `npm run cli -- convert` (or by src/model/hf.ts and
src/model/llmc.ts) computes what GPT-2 computes, without PyTorch, transformers or the safetensors
package. Both file formats are parsed here by hand, and the forward is GPT-2's math written out as
nanoGPT's model.py does it, in float64, so a reader can check it line by line:

    x = wte[tokens] + wpe[positions]
    for each block:  x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))
    logits = ln_f(x) @ wte.T            (lm_head is tied to wte)

with LayerNorm eps 1e-5, GELU's tanh approximation (gelu_new), causal self-attention and the mean
cross-entropy over every position.

How to run it:

    python3 scripts/numpy_gpt2.py MODEL TOKENS [--targets TARGETS]

  MODEL    a Hugging Face GPT-2 folder (config.json + model.safetensors), a *.safetensors file with
           config.json beside it, or an llm.c model checkpoint (*.bin, version 3, fp32)
  TOKENS   B sequences of T token ids, as JSON: a list of lists ([[1, 2, 3], [4, 5, 6]]), or an object
           {"x": [[...]], "y": [[...]]} whose y are the targets; given inline or as a path to a .json file
  TARGETS  the next-token targets, the same shape as TOKENS (inline JSON or a file)

It prints one JSON object: {"shape": [B, T, V], "logits": [B*T*V floats, row-major], "loss": mean
cross-entropy, or null without targets}. For example:

    npm run cli -- convert test/fixtures/llmc-tiny/model.bin /tmp/tiny-hf
    python3 scripts/numpy_gpt2.py /tmp/tiny-hf '[[0, 1, 2, 3]]' --targets '[[1, 2, 3, 4]]'

Needs only Python 3 and NumPy.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

# ---------------------------------------------------------------------------------------------------
# Reading a model. Both readers return (config, params): config has n_layer, n_head, n_embd,
# block_size, vocab_size; params maps Hugging Face's names (without "transformer.") to float64 arrays,
# every Conv1D weight laid out (in, out) so that a layer is x @ W + b.


def read_safetensors(path):
    """The tensors of a safetensors file: 8-byte little-endian header length N, N bytes of JSON
    {name: {dtype, shape, data_offsets: [begin, end]}}, then the data; offsets count from the data's start."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8 : 8 + n].decode("utf-8"))
    data = buf[8 + n :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        if info["dtype"] == "F32":
            a = np.frombuffer(raw, dtype="<f4")
        elif info["dtype"] == "F16":
            a = np.frombuffer(raw, dtype="<f2")
        elif info["dtype"] == "BF16":  # the top 16 bits of a float32
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            sys.exit(f"{path}: tensor {name} is {info['dtype']}; this script reads F32, F16 and BF16")
        tensors[name] = a.astype(np.float64).reshape(info["shape"])
    return tensors


def read_hf(path):
    """A Hugging Face GPT-2: config.json and model.safetensors in one folder."""
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    weights = os.path.join(path, "model.safetensors") if os.path.isdir(path) else path
    with open(os.path.join(folder, "config.json")) as f:
        c = json.load(f)
    config = dict(
        n_layer=c["n_layer"],
        n_head=c["n_head"],
        n_embd=c["n_embd"],
        block_size=c.get("n_positions", c.get("n_ctx")),
        vocab_size=c["vocab_size"],
    )
    params = {}
    for name, a in read_safetensors(weights).items():
        name = name[len("transformer.") :] if name.startswith("transformer.") else name
        params[name] = a  # Conv1D weights are already (in, out); lm_head.weight, if present, is wte
    return config, params


# llm.c's checkpoint holds each kind of tensor for every layer together, in this order; its weights
# are (out, in) and are transposed here to Hugging Face's (in, out).
LLMC_ORDER = [
    # (llm.c name, per layer?, shape from (C, Vp, maxT), Hugging Face name, transpose?)
    ("wte", False, lambda C, Vp, T: (Vp, C), "wte.weight", False),
    ("wpe", False, lambda C, Vp, T: (T, C), "wpe.weight", False),
    ("ln1w", True, lambda C, Vp, T: (C,), "h.{}.ln_1.weight", False),
    ("ln1b", True, lambda C, Vp, T: (C,), "h.{}.ln_1.bias", False),
    ("qkvw", True, lambda C, Vp, T: (3 * C, C), "h.{}.attn.c_attn.weight", True),
    ("qkvb", True, lambda C, Vp, T: (3 * C,), "h.{}.attn.c_attn.bias", False),
    ("attprojw", True, lambda C, Vp, T: (C, C), "h.{}.attn.c_proj.weight", True),
    ("attprojb", True, lambda C, Vp, T: (C,), "h.{}.attn.c_proj.bias", False),
    ("ln2w", True, lambda C, Vp, T: (C,), "h.{}.ln_2.weight", False),
    ("ln2b", True, lambda C, Vp, T: (C,), "h.{}.ln_2.bias", False),
    ("fcw", True, lambda C, Vp, T: (4 * C, C), "h.{}.mlp.c_fc.weight", True),
    ("fcb", True, lambda C, Vp, T: (4 * C,), "h.{}.mlp.c_fc.bias", False),
    ("fcprojw", True, lambda C, Vp, T: (C, 4 * C), "h.{}.mlp.c_proj.weight", True),
    ("fcprojb", True, lambda C, Vp, T: (C,), "h.{}.mlp.c_proj.bias", False),
    ("lnfw", False, lambda C, Vp, T: (C,), "ln_f.weight", False),
    ("lnfb", False, lambda C, Vp, T: (C,), "ln_f.bias", False),
]


def read_llmc(path):
    """llm.c's model checkpoint: 256 int32 of header [20240326, 3, maxT, V, L, NH, C, Vp, ...], then float32s."""
    with open(path, "rb") as f:
        buf = f.read()
    header = np.frombuffer(buf[:1024], dtype="<i4")
    magic, version, maxT, V, L, NH, C, Vp = (int(v) for v in header[:8])
    if magic != 20240326 or version != 3:
        sys.exit(f"{path}: magic {magic}, version {version}: not an llm.c fp32 checkpoint (20240326, 3)")
    floats = np.frombuffer(buf[1024:], dtype="<f4").astype(np.float64)
    params = {}
    pos = 0
    for _kind, per_layer, shape_of, name, transpose in LLMC_ORDER:
        shape = shape_of(C, Vp, maxT)
        size = int(np.prod(shape))
        for layer in range(L if per_layer else 1):
            a = floats[pos : pos + size].reshape(shape)
            params[name.format(layer)] = a.T if transpose else a
            pos += size
    if pos != len(floats):
        sys.exit(f"{path}: {len(floats)} floats after the header, the header implies {pos}")
    params["wte.weight"] = params["wte.weight"][:V]  # drop the padding rows (Vp - V zeros)
    config = dict(n_layer=L, n_head=NH, n_embd=C, block_size=maxT, vocab_size=V)
    return config, params


def read_model(path):
    if os.path.isdir(path) or path.endswith(".safetensors"):
        return read_hf(path)
    return read_llmc(path)


# ---------------------------------------------------------------------------------------------------
# The forward pass, as in nanoGPT's model.py.


def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)  # biased variance, as torch's LayerNorm
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def gelu_new(x):
    """GPT-2's GELU: the tanh approximation."""
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def attention(x, p, prefix, n_head):
    B, T, C = x.shape
    hs = C // n_head
    qkv = x @ p[prefix + "c_attn.weight"] + p[prefix + "c_attn.bias"]  # (B, T, 3C)
    q, k, v = np.split(qkv, 3, axis=-1)  # each (B, T, C)
    # (B, T, C) -> (B, nh, T, hs)
    q = q.reshape(B, T, n_head, hs).transpose(0, 2, 1, 3)
    k = k.reshape(B, T, n_head, hs).transpose(0, 2, 1, 3)
    v = v.reshape(B, T, n_head, hs).transpose(0, 2, 1, 3)
    att = (q @ k.transpose(0, 1, 3, 2)) / np.sqrt(hs)  # (B, nh, T, T)
    causal = np.tril(np.ones((T, T), dtype=bool))  # position t sees positions 0..t
    att = np.where(causal, att, -np.inf)
    att = softmax(att, axis=-1)
    y = att @ v  # (B, nh, T, hs)
    y = y.transpose(0, 2, 1, 3).reshape(B, T, C)  # heads side by side again
    return y @ p[prefix + "c_proj.weight"] + p[prefix + "c_proj.bias"]


def mlp(x, p, prefix):
    h = gelu_new(x @ p[prefix + "c_fc.weight"] + p[prefix + "c_fc.bias"])  # (B, T, 4C)
    return h @ p[prefix + "c_proj.weight"] + p[prefix + "c_proj.bias"]


def forward(config, p, idx):
    """Logits (B, T, V) for token ids idx (B, T)."""
    B, T = idx.shape
    if T > config["block_size"]:
        sys.exit(f"sequences of {T} tokens, but the model's block_size is {config['block_size']}")
    if idx.min() < 0 or idx.max() >= config["vocab_size"]:
        sys.exit(f"token ids must be 0..{config['vocab_size'] - 1}")
    x = p["wte.weight"][idx] + p["wpe.weight"][np.arange(T)]  # (B, T, C)
    for l in range(config["n_layer"]):
        h = f"h.{l}."
        x = x + attention(layer_norm(x, p[h + "ln_1.weight"], p[h + "ln_1.bias"]), p, h + "attn.", config["n_head"])
        x = x + mlp(layer_norm(x, p[h + "ln_2.weight"], p[h + "ln_2.bias"]), p, h + "mlp.")
    x = layer_norm(x, p["ln_f.weight"], p["ln_f.bias"])
    return x @ p["wte.weight"].T  # lm_head, tied to wte


def cross_entropy(logits, targets):
    """Mean over every position of -log softmax(logits)[target]."""
    z = logits - logits.max(axis=-1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    return float(-picked.mean())


# ---------------------------------------------------------------------------------------------------


def load_json(arg):
    """Inline JSON, or the contents of a JSON file."""
    if os.path.isfile(arg):
        with open(arg) as f:
            return json.load(f)
    return json.loads(arg)


def main():
    ap = argparse.ArgumentParser(description="GPT-2 forward in NumPy: logits and loss as JSON.")
    ap.add_argument("model", help="HF folder (config.json + model.safetensors), *.safetensors, or llm.c *.bin")
    ap.add_argument("tokens", help='[[ids...], ...] or {"x": [[...]], "y": [[...]]}: inline JSON or a .json file')
    ap.add_argument("--targets", help="[[ids...], ...]: the targets, inline JSON or a .json file")
    args = ap.parse_args()

    tokens = load_json(args.tokens)
    targets = None
    if isinstance(tokens, dict):
        targets = tokens.get("y")
        tokens = tokens["x"]
    if args.targets is not None:
        targets = load_json(args.targets)
    idx = np.array(tokens, dtype=np.int64)
    if idx.ndim != 2:
        sys.exit("tokens must be a list of B sequences of T token ids")

    config, params = read_model(args.model)
    logits = forward(config, params, idx)
    loss = None
    if targets is not None:
        targets = np.array(targets, dtype=np.int64)
        if targets.shape != idx.shape:
            sys.exit(f"targets are {list(targets.shape)}, tokens {list(idx.shape)}: they must match")
        loss = cross_entropy(logits, targets)
    json.dump({"shape": list(logits.shape), "logits": logits.reshape(-1).tolist(), "loss": loss}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
