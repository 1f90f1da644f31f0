#!/usr/bin/env python3
"""tmpl_ref.py - the Hugging Face ground truth for awqd's chat templates (engine/tmpl*.c).

Reads tests/reference/tmpl_cases.json and prints, on stdout, the JSON that is saved as
tests/reference/tmpl_ref.json and compared by tests/unit/test_tmpl.c (case tmpl-9.1):

    python3 tests/reference/tmpl_ref.py .cache/tokenizer/tokenizer.json > tests/reference/tmpl_ref.json

Needs `transformers` (and so jinja2). For each case {"name", "template", "messages",
"add_generation_prompt"}: a PreTrainedTokenizerFast is built from the real tokenizer.json
(argv[1]) with bos_token "<s>" and eos_token "</s>", its chat_template is set to the text of
tests/data/templates/<template>, and

    tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=...)

gives {"text": rendered} or, when the template raises (raise_exception), {"error": message}.
The output is one object keyed by case name, plus "_meta" with the versions used.
"""
import json
import os
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: tmpl_ref.py PATH/tokenizer.json > tests/reference/tmpl_ref.json")
    try:
        import jinja2
        import transformers
        from transformers import PreTrainedTokenizerFast
    except ImportError as e:
        sys.exit("tmpl_ref.py needs transformers: %s" % e)

    here = os.path.dirname(os.path.abspath(__file__))
    src = os.path.dirname(os.path.dirname(here))
    with open(os.path.join(here, "tmpl_cases.json"), encoding="utf-8") as f:
        cases = json.load(f)

    tok = PreTrainedTokenizerFast(tokenizer_file=sys.argv[1], bos_token="<s>", eos_token="</s>")
    templates = {}
    out = {"_meta": {"transformers": transformers.__version__, "jinja2": jinja2.__version__}}
    for case in cases:
        name = case["template"]
        if name not in templates:
            # newline="" keeps the file's bytes: the template text is exactly what models ship
            with open(os.path.join(src, "tests", "data", "templates", name), encoding="utf-8", newline="") as f:
                templates[name] = f.read()
        tok.chat_template = templates[name]
        try:
            text = tok.apply_chat_template(case["messages"], tokenize=False,
                                           add_generation_prompt=case["add_generation_prompt"])
            out[case["name"]] = {"text": text}
        except Exception as e:  # raise_exception() in the template: TemplateError(message)
            out[case["name"]] = {"error": str(e)}
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
