#!/usr/bin/env python3
"""Checks that the official `openai` Python client works against bitnet-server.

Run by scripts/openai_client_check.sh, which starts the server on the tiny fixture. Covers
/v1/models, completions and chat completions, streaming and not, usage counts, seeded
reproducibility, and that 4xx answers surface as the client's typed exceptions.
Prints 'N passed, M failed' and exits non-zero on any failure.
"""

import argparse
import sys
import time
import urllib.error
import urllib.request

import openai
from openai import OpenAI

results = []


def check(name, cond, detail=""):
    results.append((name, bool(cond)))
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))


def expect_error(name, exc_type, status, fn):
    try:
        fn()
    except exc_type as e:
        body = e.body if isinstance(e.body, dict) else {}
        check(name, e.status_code == status and body.get("message"), f"{e.status_code} {e.body!r}")
        return
    except Exception as e:  # noqa: BLE001 - report whatever else came back
        check(name, False, f"raised {type(e).__name__}: {e}")
        return
    check(name, False, "no error raised")


def wait_ready(root, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(root + "/ready", timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    sys.exit("server never became ready")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8080/v1")
    ap.add_argument("--api-key", required=True)
    args = ap.parse_args()
    wait_ready(args.base_url.rsplit("/v1", 1)[0])

    # No retries: a 429 or 5xx must show up here, not be hidden by the client's retry loop.
    client = OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=120)

    models = client.models.list()
    model = models.data[0].id
    check("models.list returns the served model", len(models.data) == 1 and model)
    check("models.retrieve", client.models.retrieve(model).id == model)

    # Completions.
    c = client.completions.create(model=model, prompt="Hello", max_tokens=8, temperature=0)
    ch = c.choices[0]
    check("completion object", c.object == "text_completion" and c.id.startswith("cmpl-"))
    check("completion finish_reason length", ch.finish_reason == "length", ch.finish_reason)
    check("completion usage counts", c.usage.completion_tokens == 8
          and c.usage.prompt_tokens > 0
          and c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens, c.usage)
    streamed = list(client.completions.create(model=model, prompt="Hello", max_tokens=8,
                                              temperature=0, stream=True))
    text = "".join(s.choices[0].text for s in streamed if s.choices)
    check("streamed completion equals non-streamed", text == ch.text, f"{text!r} vs {ch.text!r}")
    check("stream ends with a finish_reason", streamed[-1].choices[0].finish_reason == "length")

    seeded = [client.completions.create(model=model, prompt="Once upon", max_tokens=10,
                                        temperature=0.9, seed=7).choices[0].text for _ in range(2)]
    check("same seed, same text", seeded[0] == seeded[1], seeded)

    stop = client.completions.create(model=model, prompt="Hello", max_tokens=8, temperature=0,
                                     stop=[ch.text[2:3]] if len(ch.text) > 2 else None)
    if len(ch.text) > 2:
        check("stop sequence cuts the text", stop.choices[0].text == ch.text[:ch.text.find(ch.text[2:3])]
              and stop.choices[0].finish_reason == "stop", stop.choices[0])

    # Chat completions.
    messages = [{"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Say hi"}]
    r = client.chat.completions.create(model=model, messages=messages, max_tokens=6,
                                       temperature=0.8, seed=3)
    check("chat object", r.object == "chat.completion" and r.id.startswith("chatcmpl-"))
    check("chat message role", r.choices[0].message.role == "assistant")
    check("chat usage", 0 < r.usage.completion_tokens <= 6 and r.usage.prompt_tokens > 0, r.usage)
    content, usage, roles = "", None, []
    for s in client.chat.completions.create(model=model, messages=messages, max_tokens=6,
                                            temperature=0.8, seed=3, stream=True,
                                            stream_options={"include_usage": True}):
        if s.choices:
            content += s.choices[0].delta.content or ""
            if s.choices[0].delta.role:
                roles.append(s.choices[0].delta.role)
        if s.usage:
            usage = s.usage
    check("streamed chat equals non-streamed", content == r.choices[0].message.content,
          f"{content!r} vs {r.choices[0].message.content!r}")
    check("streamed chat announces the assistant role", roles == ["assistant"], roles)
    check("streamed chat usage chunk", usage is not None
          and usage.completion_tokens == r.usage.completion_tokens
          and usage.prompt_tokens == r.usage.prompt_tokens, usage)

    # Errors surface as the client's typed exceptions; invalid requests are 400 as OpenAI
    # answers them (BadRequestError), never 422.
    expect_error("empty messages -> BadRequestError (400)", openai.BadRequestError, 400,
                 lambda: client.chat.completions.create(model=model, messages=[], max_tokens=2))
    expect_error("temperature out of range -> BadRequestError (400)",
                 openai.BadRequestError, 400,
                 lambda: client.completions.create(model=model, prompt="x", max_tokens=2, temperature=5))
    expect_error("max_tokens beyond the context -> BadRequestError (400)",
                 openai.BadRequestError, 400,
                 lambda: client.completions.create(model=model, prompt="x", max_tokens=100000))
    expect_error("wrong type -> BadRequestError (400)", openai.BadRequestError, 400,
                 lambda: client.completions.create(model=model, prompt="x", extra_body={"max_tokens": "ten"}))
    expect_error("unknown model -> NotFoundError (404)", openai.NotFoundError, 404,
                 lambda: client.completions.create(model="no-such-model", prompt="x", max_tokens=2))
    bad = OpenAI(base_url=args.base_url, api_key="wrong-key", max_retries=0)
    expect_error("wrong API key -> AuthenticationError (401)", openai.AuthenticationError, 401,
                 lambda: bad.models.list())
    # And it still serves.
    ok = client.completions.create(model=model, prompt="still there?", max_tokens=2)
    check("serves after errors", ok.usage.completion_tokens == 2)

    passed = sum(1 for _, ok_ in results if ok_)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
