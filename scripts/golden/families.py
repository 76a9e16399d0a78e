#!/usr/bin/env python3
"""Tiny random-weight models of six tower families, and golden per-layer pooled states for them,
from Hugging Face transformers (PyTorch, CPU, fp32, eager attention):

* text (decoder) towers: LlamaModel (GQA, llama3 rope scaling), MistralModel (MQA, explicit
  head_dim), Qwen2Model (q/k/v biases), Qwen3Model (q/k RMS norms, head_dim 32 != 64/4);
* image towers: CLIPVisionModel (class token, pre_layrnorm, quick_gelu) and SiglipVisionModel
  (no class token, post_layernorm, attention-pooling head), each with the image processor's
  preprocessor_config.json (PIL backend: PIL bicubic resize, as the classic processors do).

Every parameter is re-drawn after construction (seeded): weights 0.2 * randn, biases
0.1 * randn, norm weights 1 + 0.1 * randn. HF's own init (std 0.02) leaves the residual stream
almost unchanged layer to layer, which would make a parity test toothless.

Written:
  tests/fixtures/families/<name>/{config.json, model.safetensors[, preprocessor_config.json]}
  tests/fixtures/families/photo.png   (48 wide x 40 high RGB, synthetic: gradient + rectangles)
  tests/golden/families.json          (inputs and per-layer poolings; floats to 7 significant
                                       digits; inputs are rounded *before* the reference run, so
                                       the recorded inputs are exactly what produced the goldens)

Text families: 3 rows of lengths 7, 12, 4, right-padded with id 0 to T = 12; for every
hidden_states[k] (k = 0 is the embedding output) and row b: `mean` over real tokens,
`mean_unmasked` over all T positions (depends on the pad positions' states, i.e. on HF's
causal + key-padding mask with position_ids = arange(T)), and `last` = the state at len_b - 1.
`last_is_normed` says whether hidden_states[-1] already has the final norm applied.
`pad_check_max_abs` is the largest |padded - row run alone| over the mean/last poolings.

Image families: pixel_values [2, 3, 32, 32] = seeded randn (not through the processor).
CLIP `states`: hidden_states[k][:, 0] (class token); SigLIP `states`: mean over all tokens of
hidden_states[k]. Both also record pooler_output, and `preprocessed` = the processor's
pixel_values for photo.png.

Run with the reference venv (torch, transformers, safetensors, numpy, pillow), offline:
    HF_HUB_OFFLINE=1 /tmp/iisan-ref-venv/bin/python scripts/golden/families.py
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
import transformers
from PIL import Image
from safetensors import safe_open
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlamaModel,
    MistralConfig,
    MistralModel,
    Qwen2Config,
    Qwen2Model,
    Qwen3Config,
    Qwen3Model,
    SiglipVisionConfig,
    SiglipVisionModel,
)

try:  # transformers 5: the PIL backends are the classic (slow) processors; 4.x: the classic ones
    from transformers import CLIPImageProcessorPil as ClipProc, SiglipImageProcessorPil as SiglipProc
except ImportError:  # pragma: no cover
    from transformers import CLIPImageProcessor as ClipProc, SiglipImageProcessor as SiglipProc

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures", "families")
GOLDEN = os.path.join(ROOT, "tests", "golden", "families.json")
LENGTHS = [7, 12, 4]
T = 12
torch.set_num_threads(2)

LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 64}
TEXT = {
    "llama": (LlamaModel, LlamaConfig, dict(
        vocab_size=512, hidden_size=64, intermediate_size=176, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=500000.0, rope_scaling=LLAMA3_ROPE,
        max_position_embeddings=128, tie_word_embeddings=False)),
    "mistral": (MistralModel, MistralConfig, dict(
        vocab_size=512, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, rope_theta=10000.0, sliding_window=None, head_dim=16,
        max_position_embeddings=128, tie_word_embeddings=False)),
    "qwen2": (Qwen2Model, Qwen2Config, dict(
        vocab_size=512, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, rope_theta=1000000.0, max_position_embeddings=128, tie_word_embeddings=False)),
    "qwen3": (Qwen3Model, Qwen3Config, dict(
        vocab_size=512, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, rope_theta=1000000.0, attention_bias=False,
        max_position_embeddings=128, tie_word_embeddings=False)),
}
IMAGE = {
    "clip": (CLIPVisionModel, CLIPVisionConfig, dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4, image_size=32,
        patch_size=8, hidden_act="quick_gelu", layer_norm_eps=1e-5)),
    "siglip": (SiglipVisionModel, SiglipVisionConfig, dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4, image_size=32,
        patch_size=8)),
}


def r7(x):
    """Nested lists (or a tensor) with floats rounded to 7 significant digits."""
    if isinstance(x, torch.Tensor):
        x = x.tolist()
    if isinstance(x, list):
        return [r7(v) for v in x]
    return float(f"{x:.7g}") if isinstance(x, float) else x


def is_norm(module):
    return isinstance(module, torch.nn.LayerNorm) or "RMSNorm" in type(module).__name__


@torch.no_grad()
def redraw(model, seed):
    """weights 0.2 * randn, biases 0.1 * randn, norm weights 1 + 0.1 * randn (seeded, in order)."""
    g = torch.Generator().manual_seed(seed)
    norm_params = {id(p) for m in model.modules() if is_norm(m) for n, p in m.named_parameters(recurse=False)
                   if n == "weight"}
    for name, p in model.named_parameters():
        z = torch.randn(p.shape, generator=g, dtype=torch.float32)
        if id(p) in norm_params:
            p.copy_(1.0 + 0.1 * z)
        elif name.endswith("bias"):
            p.copy_(0.1 * z)
        else:
            p.copy_(0.2 * z)


def build(cls, config_cls, kw, seed):
    torch.manual_seed(0)
    config = config_cls(attn_implementation="eager", **kw)
    model = cls(config).float().eval()
    assert model.config._attn_implementation == "eager", model.config._attn_implementation
    redraw(model, seed)
    return model


def save(model, name):
    d = os.path.join(FIX, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    for f in os.listdir(d):
        if f not in ("config.json", "model.safetensors", "preprocessor_config.json"):
            os.remove(os.path.join(d, f))
    with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
        keys = list(f.keys())
        print(f"[{name}] {len(keys)} tensors in model.safetensors:", file=sys.stderr)
        for k in keys:
            print(f"    {k} {list(f.get_slice(k).get_shape())}", file=sys.stderr)
    return d


def check_llama3_rope(model):
    """The llama3 scaling must change some (not all) frequencies at this tiny size."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    scaled = model.rotary_emb.inv_freq.clone()
    hd = model.config.head_dim
    theta = 500000.0
    plain = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    same = torch.isclose(scaled, plain, rtol=1e-6)
    divided = torch.isclose(scaled, plain / LLAMA3_ROPE["factor"], rtol=1e-6)
    wavelen = 2 * torch.pi / plain
    print(f"[llama] rope inv_freq plain  {plain.tolist()}", file=sys.stderr)
    print(f"[llama] rope inv_freq llama3 {scaled.tolist()}", file=sys.stderr)
    print(f"[llama] wavelengths {wavelen.tolist()}; unchanged: {same.tolist()}; divided by factor: "
          f"{divided.tolist()}", file=sys.stderr)
    # original_max_position_embeddings 64 puts the 8 frequencies in all three llama3 regimes:
    # wavelength < 64/4 kept, > 64/1 divided by `factor`, in between smoothly interpolated.
    # (With 16 every one of them changes: none is below 16/4 = 4.)
    assert same.any() and divided.any() and not (same | divided).all(), "llama3 regimes not all covered"
    # and the factory agrees with the module's buffer
    f, _ = ROPE_INIT_FUNCTIONS["llama3"](model.config, "cpu")
    assert torch.allclose(f, scaled)
    return {"inv_freq_plain": r7(plain), "inv_freq_scaled": r7(scaled)}


def text_inputs():
    rng = np.random.RandomState(20240611)
    ids = np.zeros((len(LENGTHS), T), np.int64)
    mask = np.zeros((len(LENGTHS), T), np.int64)
    for b, n in enumerate(LENGTHS):
        ids[b, :n] = rng.randint(1, 512, size=n)
        mask[b, :n] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


def poolings(hs, mask):
    """hs: list of [B, T, D]; returns mean / mean_unmasked / last as [B][L+1][D] tensors."""
    h = torch.stack(hs, 1)  # [B, L+1, T, D]
    m = mask[:, None, :, None].to(h.dtype)
    lens = mask.sum(1)
    return {
        "mean": (h * m).sum(2) / m.sum(2),
        "mean_unmasked": h.mean(2),
        "last": h[torch.arange(h.shape[0]), :, lens - 1],
    }


@torch.no_grad()
def text_family(name, cls, config_cls, kw, seed):
    model = build(cls, config_cls, kw, seed)
    extra = check_llama3_rope(model) if name == "llama" else {}
    save(model, name)
    ids, mask = text_inputs()
    pre_norm = []
    hook = model.layers[-1].register_forward_hook(
        lambda mod, args, out: pre_norm.append(out[0] if isinstance(out, tuple) else out))
    out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    hook.remove()
    hs = list(out.hidden_states)
    L1, D = len(hs), hs[0].shape[-1]
    assert L1 == model.config.num_hidden_layers + 1
    last_is_normed = bool(torch.allclose(hs[-1], out.last_hidden_state, atol=1e-6, rtol=0))
    d_raw = (hs[-1] - pre_norm[0]).abs().max().item()
    d_normed = (hs[-1] - model.norm(pre_norm[0])).abs().max().item()
    print(f"[{name}] hidden_states[-1] vs last_hidden_state max|d| = "
          f"{(hs[-1] - out.last_hidden_state).abs().max().item():.3g}; vs last layer's output = {d_raw:.3g}; "
          f"vs norm(last layer's output) = {d_normed:.3g}", file=sys.stderr)
    assert last_is_normed == (d_normed < 1e-6) and last_is_normed != (d_raw < 1e-6)
    pools = poolings(hs, mask)
    # Each row alone, unpadded, no mask: with right padding and causal attention the real
    # positions must not see the pads, so mean/last must agree.
    worst = 0.0
    for b, n in enumerate(LENGTHS):
        solo = model(input_ids=ids[b:b + 1, :n], output_hidden_states=True).hidden_states
        sp = poolings(list(solo), torch.ones(1, n, dtype=torch.int64))
        for k in ("mean", "last"):
            d = (sp[k][0] - pools[k][b]).abs().max().item()
            worst = max(worst, d)
            print(f"[{name}] pad check row {b} (len {n}) {k}: max|padded - alone| = {d:.3g}", file=sys.stderr)
    assert worst < 1e-4, worst
    scale = torch.stack(hs, 0).abs().mean(dim=(1, 2, 3))
    print(f"[{name}] mean |state| per layer: {[round(v, 3) for v in scale.tolist()]}", file=sys.stderr)
    return dict(extra, **{
        "ids": ids.tolist(), "mask": mask.tolist(), "lengths": LENGTHS, "layers": L1, "width": D,
        "last_is_normed": last_is_normed, "pad_check_max_abs": worst,
        "pooling": {k: r7(v) for k, v in pools.items()},
    })


def photo():
    """A deterministic 48 (wide) x 40 (high) RGB image: smooth gradient + coloured rectangles."""
    h, w = 40, 48
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([255 * x / (w - 1), 255 * y / (h - 1), 127.5 + 100 * np.sin(x / 5.0) * np.cos(y / 7.0)], -1)
    img[5:15, 6:20] = [230, 30, 40]
    img[22:36, 28:44] = [20, 60, 220]
    img[10:30, 36:40] = [250, 240, 30]
    img[30:38, 2:12] = [10, 200, 90]
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    path = os.path.join(FIX, "photo.png")
    Image.fromarray(img, "RGB").save(path)
    return Image.open(path).convert("RGB")


@torch.no_grad()
def image_family(name, cls, config_cls, kw, seed, image):
    model = build(cls, config_cls, kw, seed)
    d = save(model, name)
    if name == "clip":
        proc = ClipProc(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, resample=3)
    else:
        proc = SiglipProc(size={"height": 32, "width": 32}, resample=3)
    proc.save_pretrained(d)
    pre = proc(images=image, return_tensors="pt")["pixel_values"]
    assert tuple(pre.shape) == (1, 3, 32, 32), pre.shape

    g = torch.Generator().manual_seed(7)
    pixels = torch.randn(2, 3, 32, 32, generator=g)
    pixels = torch.tensor(r7(pixels), dtype=torch.float32)  # what the json holds, exactly
    out = model(pixel_values=pixels, output_hidden_states=True)
    hs = list(out.hidden_states)
    # transformers 5 dropped the `vision_model` wrapper (keys unprefixed); 4.x had it.
    vm = getattr(model, "vision_model", model)
    if name == "clip":
        # hidden_states[0] is pre_layrnorm(embeddings), not the raw embeddings.
        emb = vm.pre_layrnorm(vm.embeddings(pixels))
        d0 = (emb - hs[0]).abs().max().item()
        print(f"[clip] hidden_states[0] vs pre_layrnorm(embeddings) max|d| = {d0:.3g}", file=sys.stderr)
        assert d0 < 1e-6
        states = torch.stack([h[:, 0] for h in hs], 1)
        # pooler_output = post_layernorm(last_hidden_state[:, 0])
        dp = (vm.post_layernorm(out.last_hidden_state[:, 0]) - out.pooler_output).abs().max().item()
        print(f"[clip] pooler_output vs post_layernorm(cls) max|d| = {dp:.3g}", file=sys.stderr)
    else:
        states = torch.stack([h.mean(1) for h in hs], 1)
    last_equal = bool(torch.allclose(hs[-1], out.last_hidden_state, atol=1e-6, rtol=0))
    print(f"[{name}] hidden_states[-1] == last_hidden_state: {last_equal} (max|d| = "
          f"{(hs[-1] - out.last_hidden_state).abs().max().item():.3g}); post_layernorm(hidden_states[-1]) vs "
          f"last_hidden_state = {(vm.post_layernorm(hs[-1]) - out.last_hidden_state).abs().max().item():.3g}",
          file=sys.stderr)
    print(f"[{name}] pooler_output shape {list(out.pooler_output.shape)}; tokens {hs[0].shape[1]}", file=sys.stderr)
    return {
        "pixels": r7(pixels.flatten()), "shape": list(pixels.shape), "layers": len(hs), "width": hs[0].shape[-1],
        "tokens": hs[0].shape[1], "states": r7(states), "pooler_output": r7(out.pooler_output),
        "last_hidden_is_last_state": last_equal,
        "preprocessed": r7(pre[0].flatten()),
    }


def main():
    os.makedirs(FIX, exist_ok=True)
    families = {}
    for i, (name, (cls, config_cls, kw)) in enumerate(TEXT.items()):
        families[name] = text_family(name, cls, config_cls, kw, seed=1000 + i)
    image = photo()
    for i, (name, (cls, config_cls, kw)) in enumerate(IMAGE.items()):
        families[name] = image_family(name, cls, config_cls, kw, seed=2000 + i, image=image)
    with open(GOLDEN, "w") as f:
        json.dump({
            "producer": "scripts/golden/families.py",
            "transformers": transformers.__version__, "torch": torch.__version__, "families": families,
        }, f)
    print(f"wrote {os.path.relpath(GOLDEN, ROOT)} and {os.path.relpath(FIX, ROOT)}/", file=sys.stderr)


if __name__ == "__main__":
    main()
