#!/usr/bin/env python3
"""Checks `response_format` (constrained decoding) through the official `openai` client.

Run by scripts/openai_json_check.sh against bitnet-server on the embedded model. A
json_schema request must give output that validates against the schema (python `jsonschema`)
for 20 seeds at temperature 0.9 (properties in the schema's order), json_object output that completes must parse as an object, streaming must
give the same text, and an unsupported schema keyword must raise BadRequestError naming it.
Prints 'N passed, M failed' and exits non-zero on any failure.
"""

import argparse
import json
import sys

import jsonschema
import openai
from openai import OpenAI

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer"},
        "tags": {"type": "array", "items": {"enum": ["rust", "cpu", "llm"]}, "maxItems": 3},
    },
    "required": ["name", "age", "tags"],
    "additionalProperties": False,
}
FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA, "strict": True}}
MESSAGES = [{"role": "user", "content": "Describe a person as JSON."}]

results = []


def check(name, cond, detail=""):
    results.append((name, bool(cond)))
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


def validates(text):
    try:
        jsonschema.validate(json.loads(text), SCHEMA)
        return ""
    except (ValueError, jsonschema.ValidationError) as e:
        return str(e).splitlines()[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8080/v1")
    ap.add_argument("--api-key", required=True)
    args = ap.parse_args()
    client = OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=120)
    model = client.models.list().data[0].id

    for seed in range(20):
        r = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=200,
                                           temperature=0.9, seed=seed, response_format=FORMAT)
        ch = r.choices[0]
        problem = validates(ch.message.content)
        if not problem and list(json.loads(ch.message.content)) != ["name", "age", "tags"]:
            problem = "properties not in the schema's order"
        check(f"json_schema seed {seed}: finish_reason stop and the output validates",
              ch.finish_reason == "stop" and not problem,
              f"{ch.finish_reason} {problem} {ch.message.content!r}")

    streamed = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=200,
                                              temperature=0.9, seed=3, response_format=FORMAT,
                                              stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    whole = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=200,
                                           temperature=0.9, seed=3, response_format=FORMAT)
    check("json_schema streamed equals non-streamed", text == whole.choices[0].message.content,
          f"{text!r} vs {whole.choices[0].message.content!r}")

    # Free-form objects may run into max_tokens (finish_reason "length", a cut value); each
    # that stops must parse, and most must stop.
    stopped = 0
    for seed in range(5):
        r = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=200,
                                           temperature=0.9, seed=seed,
                                           response_format={"type": "json_object"})
        ch = r.choices[0]
        if ch.finish_reason != "stop":
            continue
        stopped += 1
        try:
            ok = isinstance(json.loads(ch.message.content), dict)
        except ValueError:
            ok = False
        check(f"json_object seed {seed}: output is a JSON object", ok, repr(ch.message.content))
    check("json_object: at least 3 of 5 outputs complete", stopped >= 3, f"{stopped} of 5")

    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"n": {"type": "string", "pattern": "^a"}}}}}
    try:
        client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=8,
                                       response_format=bad)
        check("unsupported schema keyword raises BadRequestError", False, "no error raised")
    except openai.BadRequestError as e:
        check("unsupported schema keyword raises BadRequestError naming it",
              "'pattern'" in str(e.body), e.body)
    except openai.APIStatusError as e:
        check("unsupported schema keyword raises BadRequestError", False,
              f"{e.status_code} {e.body!r}")

    failed = sum(1 for _, ok in results if not ok)
    print(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
