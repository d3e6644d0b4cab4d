#!/usr/bin/env python3
"""Checks that the official `openai` Python client works against bitnet-server.

Run by scripts/openai_client_check.sh, which starts the server on the tiny fixture. Covers
/v1/models, completions and chat completions, streaming and not, usage counts, seeded
reproducibility, frequency/presence penalties, logprobs/top_logprobs (chat and completions,
streaming too), n choices, stream_options.include_usage, unknown fields being ignored, and
that 4xx answers surface as the client's typed exceptions (BadRequestError for bad values).
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

    # Frequency/presence penalties: accepted, deterministic, and they change greedy output on a
    # repetitive prompt (that they match the formula exactly is checked against the engine in
    # crates/bitnet-server/tests/openai_params.rs).
    rep_prompt = "the the the the the the the the"
    def greedy(**kw):
        return client.completions.create(model=model, prompt=rep_prompt, max_tokens=16,
                                         temperature=0, **kw)
    plain = greedy()
    pres = [greedy(presence_penalty=2.0) for _ in range(2)]
    freq = greedy(frequency_penalty=2.0)
    toks = lambda r: r.model_extra["bitnet"]["token_ids"]
    check("presence_penalty is deterministic", toks(pres[0]) == toks(pres[1]))
    check("presence_penalty=2 changes greedy output", toks(pres[0]) != toks(plain),
          f"{toks(pres[0])} vs {toks(plain)}")
    check("frequency_penalty=2 changes greedy output", toks(freq) != toks(plain))
    chat_pen = client.chat.completions.create(model=model, messages=messages, max_tokens=6,
                                              temperature=0, frequency_penalty=0.5,
                                              presence_penalty=0.5)
    check("chat accepts penalties", chat_pen.choices[0].finish_reason in ("stop", "length"))

    # Logprobs, chat: values <= 0, top lists sorted, greedy's token is the top entry.
    lr = client.chat.completions.create(model=model, messages=messages, max_tokens=6,
                                        temperature=0, logprobs=True, top_logprobs=5)
    content_lp = lr.choices[0].logprobs.content
    check("chat logprobs: one entry per token",
          len(content_lp) == lr.usage.completion_tokens, (len(content_lp), lr.usage))
    ok_vals = all(e.logprob <= 0 and all(t.logprob <= 0 for t in e.top_logprobs)
                  for e in content_lp)
    check("chat logprobs are <= 0", ok_vals)
    check("chat top_logprobs has 5 entries, sorted",
          all(len(e.top_logprobs) == 5 and all(a.logprob >= b.logprob for a, b in
                                                zip(e.top_logprobs, e.top_logprobs[1:]))
              for e in content_lp))
    check("greedy token's logprob equals its top entry",
          all(abs(e.logprob - e.top_logprobs[0].logprob) < 1e-6
              and e.token == e.top_logprobs[0].token for e in content_lp))
    check("chat logprob bytes spell the token",
          all(bytes(e.bytes).decode("utf-8", "replace") == e.token for e in content_lp))
    check("chat logprob tokens spell the content",
          "".join(e.token for e in content_lp) == lr.choices[0].message.content)
    streamed_lp = []
    for s in client.chat.completions.create(model=model, messages=messages, max_tokens=6,
                                            temperature=0, logprobs=True, top_logprobs=5,
                                            stream=True):
        if s.choices and s.choices[0].logprobs and s.choices[0].logprobs.content:
            streamed_lp.extend(s.choices[0].logprobs.content)
    check("streamed chat logprobs equal non-streamed",
          [(e.token, e.logprob) for e in streamed_lp] == [(e.token, e.logprob) for e in content_lp])

    # Logprobs, legacy completions.
    cl = client.completions.create(model=model, prompt="Hello", max_tokens=5, temperature=0,
                                   logprobs=3)
    lp = cl.choices[0].logprobs
    check("completion logprobs lists", len(lp.tokens) == len(lp.token_logprobs)
          == len(lp.top_logprobs) == len(lp.text_offset) == cl.usage.completion_tokens, lp)
    check("completion top_logprobs: dicts of <= 3, chosen is the best under greedy",
          all(0 < len(d) <= 3 and abs(max(d.values()) - v) < 1e-6
              for d, v in zip(lp.top_logprobs, lp.token_logprobs)), lp.top_logprobs)
    check("completion text_offset starts at 0 and grows",
          lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset), lp.text_offset)
    slp = []
    for s in client.completions.create(model=model, prompt="Hello", max_tokens=5,
                                       temperature=0, logprobs=3, stream=True):
        if s.choices and s.choices[0].logprobs:
            slp.extend(s.choices[0].logprobs.token_logprobs)
    check("streamed completion logprobs equal non-streamed", slp == lp.token_logprobs,
          f"{slp} vs {lp.token_logprobs}")

    # n choices: indices 0..n-1, distinct with temperature > 0, usage summed; streaming too.
    nr = client.chat.completions.create(model=model, messages=messages, max_tokens=8,
                                        temperature=2.0, seed=11, n=3)
    check("n=3 gives three choices indexed 0..2",
          [c.index for c in nr.choices] == [0, 1, 2], [c.index for c in nr.choices])
    texts = [c.message.content for c in nr.choices]
    ids_n = [tuple(c["token_ids"]) for c in nr.model_extra["bitnet"]["choices"]]
    check("n=3 choices differ (temperature 2, seed 11)", len(set(ids_n)) > 1, ids_n)
    singles = [client.chat.completions.create(model=model, messages=messages, max_tokens=8,
                                              temperature=2.0, seed=11 + i)
               for i in range(3)]
    check("choice i equals a single request with seed + i",
          texts == [r1.choices[0].message.content for r1 in singles],
          (texts, [r1.choices[0].message.content for r1 in singles]))
    check("n=3 usage sums completion tokens",
          nr.usage.completion_tokens == sum(r1.usage.completion_tokens for r1 in singles)
          and nr.usage.prompt_tokens == singles[0].usage.prompt_tokens, nr.usage)
    per_index, usage_n = {}, None
    for s in client.chat.completions.create(model=model, messages=messages, max_tokens=8,
                                            temperature=2.0, seed=11, n=3, stream=True,
                                            stream_options={"include_usage": True}):
        for c in s.choices:
            per_index[c.index] = per_index.get(c.index, "") + (c.delta.content or "")
        if s.usage:
            usage_n = s.usage
    check("streamed n=3 carries each choice's index and text",
          [per_index.get(i) for i in range(3)] == texts, per_index)
    check("streamed n=3 usage chunk sums",
          usage_n is not None and usage_n.completion_tokens == nr.usage.completion_tokens, usage_n)
    cn = client.completions.create(model=model, prompt="Once", max_tokens=4, temperature=1.0,
                                   seed=5, n=2)
    check("completions n=2", [c.index for c in cn.choices] == [0, 1])

    # include_usage on completions: the last chunk before [DONE] has no choices, only usage.
    chunks = list(client.completions.create(model=model, prompt="Hello", max_tokens=4,
                                            temperature=0, stream=True,
                                            stream_options={"include_usage": True}))
    check("include_usage: final chunk with empty choices and usage",
          chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4, chunks[-1])
    check("include_usage: other chunks have no usage",
          all(c.usage is None for c in chunks[:-1]))

    # seed: same seed and request, same output; a different seed (temperature 1) differs.
    runs = [client.chat.completions.create(model=model, messages=messages, max_tokens=12,
                                           temperature=1.0, seed=seed).choices[0].message.content
            for seed in (21, 21, 22)]
    check("seed reproduces chat output", runs[0] == runs[1], runs)

    # Unknown fields are ignored (logged by the server), not refused.
    unk = client.chat.completions.create(model=model, messages=messages, max_tokens=2,
                                         extra_body={"my_vendor_option": {"a": 1},
                                                     "cache_prompt": True})
    check("unknown fields are accepted", unk.choices[0].finish_reason in ("stop", "length"))

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
    expect_error("n=0 -> BadRequestError (400)", openai.BadRequestError, 400,
                 lambda: client.completions.create(model=model, prompt="x", max_tokens=2, n=0))
    expect_error("n=17 -> BadRequestError (400)", openai.BadRequestError, 400,
                 lambda: client.chat.completions.create(model=model, messages=messages,
                                                        max_tokens=2, n=17))
    expect_error("top_logprobs=21 -> BadRequestError (400)", openai.BadRequestError, 400,
                 lambda: client.chat.completions.create(model=model, messages=messages,
                                                        max_tokens=2, logprobs=True,
                                                        top_logprobs=21))
    expect_error("frequency_penalty=3 -> BadRequestError (400)", openai.BadRequestError, 400,
                 lambda: client.completions.create(model=model, prompt="x", max_tokens=2,
                                                   frequency_penalty=3))
    expect_error("presence_penalty=-3 -> BadRequestError (400)", openai.BadRequestError, 400,
                 lambda: client.chat.completions.create(model=model, messages=messages,
                                                        max_tokens=2, presence_penalty=-3))
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
