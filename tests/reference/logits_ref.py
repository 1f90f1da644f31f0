#!/usr/bin/env python3
"""logits_ref.py - reference greedy runs of the awq-mkmodel checkpoints of cases.json through
Hugging Face transformers (fp32, eager attention), printed as one JSON document on stdout.

    bash tests/reference/mkcases.sh BIN TOKENIZER OUTDIR
    python3 tests/reference/logits_ref.py OUTDIR > tests/reference/logits_ref.json

For each case: the AWQ tensors are dequantized to fp32 exactly per the AutoAWQ GEMM format
(nibble i of packed column c is output 8c + ORDER[i], ORDER = 0 2 4 6 1 3 5 7;
w = (q - z) * s per group of input rows), loaded into MistralForCausalLM / LlamaForCausalLM
built from config.json (quantization_config removed, attn_implementation eager, float32), and
run greedily for `steps` steps from the case's prompt ids, recomputing the whole sequence each
step. Recorded: the greedy ids, the top-1 minus top-2 logit margin at every step, and the first
step's top-10 (id, logit).
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import load_file

REV = [0, 4, 1, 5, 2, 6, 3, 7]  # output column 8c + j is nibble REV[j]


def unpack(q):
    """int32 (rows, cols) -> int (rows, cols * 8) in natural output order."""
    shifts = torch.arange(0, 32, 4, dtype=torch.int32)
    nib = (q.unsqueeze(-1) >> shifts) & 0xF  # (rows, cols, 8): nibble i
    return nib[..., REV].reshape(q.shape[0], -1)


def dequant(qweight, qzeros, scales, group):
    w = unpack(qweight).double()
    z = unpack(qzeros).double().repeat_interleave(group, dim=0)
    s = scales.double().repeat_interleave(group, dim=0)
    return ((w - z) * s).float()  # (in, out)


def load_tensors(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        files = sorted(set(json.load(open(idx))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    t = {}
    for f in files:
        t.update(load_file(os.path.join(d, f)))
    return t


def build(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    qc = cfg.pop("quantization_config", None) or {}
    group = int(qc.get("group_size", 128))
    cfg.pop("torch_dtype", None)
    arch = cfg.get("architectures", ["MistralForCausalLM"])[0]
    if arch == "LlamaForCausalLM":
        config, cls = transformers.LlamaConfig(**cfg), transformers.LlamaForCausalLM
    else:
        config, cls = transformers.MistralConfig(**cfg), transformers.MistralForCausalLM
    config._attn_implementation = "eager"
    config.torch_dtype = torch.float32
    model = cls(config).float().eval()

    t = load_tensors(d)
    sd = {}
    for name, v in t.items():
        if name.endswith(".qweight"):
            base = name[: -len(".qweight")]
            sd[base + ".weight"] = dequant(v, t[base + ".qzeros"], t[base + ".scales"], group).t().contiguous()
        elif name.endswith(".qzeros") or name.endswith(".scales"):
            continue
        else:
            sd[name] = v.float()
    missing, unexpected = model.load_state_dict(sd, strict=False)
    allowed = lambda k: "rotary_emb" in k or (k == "lm_head.weight" and config.tie_word_embeddings)
    bad_missing = [k for k in missing if not allowed(k)]
    assert not bad_missing, f"{d}: missing {bad_missing}"
    assert not unexpected, f"{d}: unexpected {unexpected}"
    if config.tie_word_embeddings:
        model.tie_weights()
        assert torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
    return model


@torch.no_grad()
def run_case(d, prompt, steps):
    model = build(d)
    ids = list(prompt)
    out, margins, top10 = [], [], None
    for step in range(steps):
        logits = model(torch.tensor([ids], dtype=torch.long)).logits[0, -1].float()
        v, i = torch.topk(logits, 10)
        if step == 0:
            top10 = [[int(a), float(b)] for a, b in zip(i, v)]
        margins.append(float(v[0] - v[1]))
        out.append(int(i[0]))
        ids.append(int(i[0]))
    return {"prompt": list(prompt), "ids": out, "margins": margins, "top10": top10}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: logits_ref.py CASES_DIR   (written by mkcases.sh)")
    root = sys.argv[1]
    spec = json.load(open(os.path.join(root, "cases.json")))
    torch.manual_seed(0)
    res = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "steps": spec["steps"],
        "cases": {},
    }
    for c in spec["cases"]:
        res["cases"][c["name"]] = run_case(os.path.join(root, c["name"]), c["prompt"], spec["steps"])
        print(f"logits_ref: {c['name']} done", file=sys.stderr)
    json.dump(res, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
