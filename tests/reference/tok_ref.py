#!/usr/bin/env python3
"""tok_ref.py - the Hugging Face ground truth for awqd's tokenizer (engine/tok*.c).

Reads tests/reference/tok_cases.json and prints, on stdout, the JSON that is saved as
tests/reference/tok_ref.json and compared by tests/unit/test_tok.c:

    python3 tests/reference/tok_ref.py .cache/tokenizer/tokenizer.json \
        [.cache/tokenizer/tokenizer_config.json] > tests/reference/tok_ref.json

Needs the `tokenizers` package; `transformers` is used as a cross-check when installed.

What is computed, for each case {"name", "text"} (or {"name", "repeat", "count"}):
  ids           tokenizers.Tokenizer.from_file(...).encode(text) with the special tokens that
                tokenizer_config.json asks for (add_bos_token, default true; add_eos_token,
                default false), i.e. what transformers' LlamaTokenizerFast gives for tokenizer(text)
  ids_no_bos    encode(text, add_special_tokens=False)
  tokens        the vocabulary strings of ids
  decoded       decode(ids, skip_special_tokens=False)
  decoded_skip  decode(ids, skip_special_tokens=True)
For each decode case {"name", "tokens"}: the ids of those vocabulary strings and both decodes.
Under "variants", the same for each variant of tok_cases.json: tokenizer.json with some
top-level members replaced (normalizer, pre_tokenizer, decoder), e.g. the non-legacy Llama form.
transformers' AutoTokenizer on the same directory is run too; any case where it disagrees with
the above is listed under "transformers_disagrees" (it is not the reference: the file is).
"""
import hashlib
import json
import os
import sys


def die(msg):
    sys.stderr.write("tok_ref.py: %s\n" % msg)
    sys.exit(1)


def main():
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        sys.stderr.write(__doc__)
        sys.exit(2)
    tok_path = sys.argv[1]
    cfg_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(os.path.abspath(tok_path)), "tokenizer_config.json")
    here = os.path.dirname(os.path.abspath(__file__))
    cases_path = os.path.join(here, "tok_cases.json")

    try:
        import tokenizers
    except ImportError:
        die("the `tokenizers` package is needed (pip install tokenizers)")

    with open(tok_path, "rb") as f:
        raw = f.read()
    sha = hashlib.sha256(raw).hexdigest()
    cfg = {}
    if os.path.exists(cfg_path):
        with open(cfg_path, "r", encoding="utf-8") as f:
            cfg = json.load(f)
    add_bos = cfg.get("add_bos_token", True)
    add_eos = cfg.get("add_eos_token", False)
    with open(cases_path, "r", encoding="utf-8") as f:
        spec = json.load(f)

    tok = tokenizers.Tokenizer.from_file(tok_path)

    def token_text(t):
        return t["content"] if isinstance(t, dict) else t

    bos_text = token_text(cfg.get("bos_token")) if cfg.get("bos_token") else None
    eos_text = token_text(cfg.get("eos_token")) if cfg.get("eos_token") else None
    bos_id = tok.token_to_id(bos_text) if bos_text else None
    eos_id = tok.token_to_id(eos_text) if eos_text else None

    # transformers as a cross-check only (its Llama class may rebuild the pipeline).
    hf = None
    hf_version = None
    hf_error = None
    try:
        import transformers
        hf_version = transformers.__version__
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        d = os.path.dirname(os.path.abspath(tok_path))
        try:
            hf = transformers.AutoTokenizer.from_pretrained(d)
        except Exception as e:  # fall back to the explicit class
            hf_error = "AutoTokenizer: %r" % (e,)
            hf = transformers.LlamaTokenizerFast(tokenizer_file=tok_path,
                                                 add_bos_token=add_bos, add_eos_token=add_eos)
    except Exception as e:
        hf_error = (hf_error + "; " if hf_error else "") + repr(e)
        hf = None

    def run_cases(t, cross):
        out = []
        for c in spec["cases"]:
            text = c["text"] if "text" in c else c["repeat"] * c["count"]
            plain = t.encode(text, add_special_tokens=False).ids
            ids = list(plain)
            # The same rule as LlamaTokenizerFast.update_post_processor: BOS/EOS per the config.
            if add_bos and bos_id is not None:
                ids = [bos_id] + ids
            if add_eos and eos_id is not None:
                ids = ids + [eos_id]
            rec = {
                "name": c["name"],
                "text": text,
                "ids": ids,
                "ids_no_bos": plain,
                "ids_file_template": t.encode(text).ids,  # what the file's own post_processor adds
                "tokens": [t.id_to_token(i) for i in ids],
                "decoded": t.decode(ids, skip_special_tokens=False),
                "decoded_skip": t.decode(ids, skip_special_tokens=True),
            }
            out.append(rec)
            if cross:
                cross_check(text, ids, plain, rec, c["name"])
        return out

    def run_decode_cases(t, cross):
        out = []
        for c in spec.get("decode_cases", []):
            ids = []
            for tk in c["tokens"]:
                i = t.token_to_id(tk)
                if i is None:
                    die("decode case %s: %r is not in the vocabulary" % (c["name"], tk))
                ids.append(i)
            rec = {
                "name": c["name"],
                "ids": ids,
                "tokens": c["tokens"],
                "decoded": t.decode(ids, skip_special_tokens=False),
                "decoded_skip": t.decode(ids, skip_special_tokens=True),
                "stream_diverges": bool(c.get("stream_diverges", False)),
            }
            out.append(rec)
            if cross:
                try:
                    h1 = hf.decode(ids, skip_special_tokens=False)
                    h2 = hf.decode(ids, skip_special_tokens=True)
                    if h1 != rec["decoded"] or h2 != rec["decoded_skip"]:
                        disagree.append({"name": "decode:" + c["name"], "decoded": h1, "decoded_skip": h2})
                except Exception as e:
                    disagree.append({"name": "decode:" + c["name"], "error": repr(e)})
        return out

    disagree = []

    def cross_check(text, ids, plain, rec, name):
        try:
            h_ids = list(hf(text)["input_ids"])
            h_plain = list(hf(text, add_special_tokens=False)["input_ids"])
            h_dec = hf.decode(ids, skip_special_tokens=False)
            h_dec_skip = hf.decode(ids, skip_special_tokens=True)
            diff = {}
            if h_ids != ids:
                diff["ids"] = h_ids
            if h_plain != plain:
                diff["ids_no_bos"] = h_plain
            if h_dec != rec["decoded"]:
                diff["decoded"] = h_dec
            if h_dec_skip != rec["decoded_skip"]:
                diff["decoded_skip"] = h_dec_skip
            if diff:
                diff["name"] = name
                disagree.append(diff)
        except Exception as e:
            disagree.append({"name": name, "error": repr(e)})

    out_cases = run_cases(tok, hf is not None)
    out_dec = run_decode_cases(tok, hf is not None)

    # Variants: the same vocabulary and merges under other pipelines (the non-legacy Llama
    # form with a Metaspace pre-tokenizer, a Metaspace decoder, no decoder), each given in
    # tok_cases.json as top-level members that replace those of tokenizer.json.
    out_variants = {}
    base = json.loads(raw.decode("utf-8"))
    for vname, over in spec.get("variants", {}).items():
        d = dict(base)
        d.update(over)
        rec = {"overrides": over}
        try:
            vt = tokenizers.Tokenizer.from_str(json.dumps(d))
            rec["cases"] = run_cases(vt, False)
            rec["decode_cases"] = run_decode_cases(vt, False)
        except Exception as e:
            rec["error"] = repr(e)
        out_variants[vname] = rec

    result = {
        "tokenizer_sha256": sha,
        "tokenizers_version": tokenizers.__version__,
        "transformers_version": hf_version,
        "transformers_class": type(hf).__name__ if hf is not None else None,
        "transformers_note": hf_error,
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
        "bos_id": bos_id,
        "eos_id": eos_id,
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "cases": out_cases,
        "decode_cases": out_dec,
        "transformers_disagrees": disagree,
        "variants": out_variants,
    }
    sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=1))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
