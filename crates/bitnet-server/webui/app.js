// bitnet-server's chat page: talks to this server's own OpenAI API (GET /v1/models,
// POST /v1/chat/completions with stream: true) and nothing else. Model output is only ever
// put into the page as text (textContent), never parsed as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    model: $("model"),
    newChat: $("new-chat"),
    settingsToggle: $("settings-toggle"),
    settings: $("settings"),
    system: $("system"),
    temperature: $("temperature"),
    maxTokens: $("max-tokens"),
    auth: $("auth"),
    authForm: $("auth-form"),
    apiKey: $("api-key"),
    authError: $("auth-error"),
    log: $("log"),
    empty: $("empty"),
    composer: $("composer"),
    input: $("input"),
    send: $("send"),
    stop: $("stop"),
    status: $("status"),
  };

  // The API key lives in sessionStorage only: gone when the tab closes, never in
  // localStorage. Settings are not secret and stay in localStorage.
  const KEY_ITEM = "bitnet-server.api-key";
  const SETTINGS_ITEM = "bitnet-server.chat-settings";

  /** The conversation sent with each request: {role, content} objects, system prompt excluded. */
  let history = [];
  /** The served model's id, once /v1/models answered. */
  let modelId = null;
  /** Aborts the running request (Stop, New chat); null when idle. */
  let controller = null;

  function storage(kind) {
    try {
      return kind === "session" ? window.sessionStorage : window.localStorage;
    } catch {
      return null; // storage disabled (privacy settings): work without it
    }
  }

  function apiKey() {
    return storage("session")?.getItem(KEY_ITEM) ?? "";
  }

  function headers() {
    const h = { "Content-Type": "application/json" };
    const key = apiKey();
    if (key) h.Authorization = `Bearer ${key}`;
    return h;
  }

  function setStatus(text) {
    ui.status.textContent = text;
  }

  /** The `error.message` of an OpenAI-style error body, or the HTTP status. */
  async function errorMessage(resp) {
    try {
      const body = await resp.json();
      if (body?.error?.message) return `${resp.status}: ${body.error.message}`;
    } catch {
      // not JSON: fall through
    }
    return `${resp.status} ${resp.statusText}`.trim();
  }

  // --- settings ---

  function loadSettings() {
    let saved = {};
    try {
      saved = JSON.parse(storage("local")?.getItem(SETTINGS_ITEM) ?? "{}") ?? {};
    } catch {
      saved = {};
    }
    if (typeof saved.system === "string") ui.system.value = saved.system;
    if (Number.isFinite(saved.temperature)) ui.temperature.value = String(saved.temperature);
    if (Number.isInteger(saved.maxTokens)) ui.maxTokens.value = String(saved.maxTokens);
  }

  function saveSettings() {
    const s = readSettings();
    if (!s) return;
    storage("local")?.setItem(
      SETTINGS_ITEM,
      JSON.stringify({ system: ui.system.value, temperature: s.temperature, maxTokens: s.maxTokens }),
    );
  }

  /** The settings as numbers, or null (with the reason shown) when one is invalid. */
  function readSettings() {
    const temperature = Number(ui.temperature.value);
    const maxTokens = Number(ui.maxTokens.value);
    if (ui.temperature.value === "" || !Number.isFinite(temperature) || temperature < 0 || temperature > 2) {
      setStatus("Temperature must be a number from 0 to 2.");
      return null;
    }
    if (!Number.isInteger(maxTokens) || maxTokens < 1) {
      setStatus("Max tokens must be a whole number of at least 1.");
      return null;
    }
    return { temperature, maxTokens, system: ui.system.value.trim() };
  }

  // --- the model and the API key ---

  async function loadModel() {
    let resp;
    try {
      resp = await fetch("v1/models", { headers: headers(), cache: "no-store" });
    } catch (e) {
      ui.model.textContent = "offline";
      setStatus(`Cannot reach the server (${e.message}); retrying.`);
      setTimeout(loadModel, 2000);
      return;
    }
    if (resp.status === 401) {
      ui.model.textContent = "API key needed";
      askForKey(apiKey() ? await errorMessage(resp) : "");
      return;
    }
    if (resp.status === 503) {
      ui.model.textContent = "loading…";
      setStatus(await errorMessage(resp));
      setTimeout(loadModel, 1000);
      return;
    }
    if (!resp.ok) {
      ui.model.textContent = "unavailable";
      setStatus(`Listing the model failed: ${await errorMessage(resp)}`);
      return;
    }
    const body = await resp.json();
    const m = Array.isArray(body?.data) ? body.data[0] : null;
    modelId = typeof m?.id === "string" ? m.id : null;
    ui.model.textContent = modelId ?? "no model";
    if (Number.isInteger(m?.context_length)) {
      ui.model.title = `${modelId}: context of ${m.context_length} tokens`;
      ui.maxTokens.max = String(m.context_length);
    }
    document.body.dataset.model = modelId ?? "";
    setStatus("");
  }

  function askForKey(problem) {
    ui.auth.hidden = false;
    ui.authError.textContent = problem;
    ui.apiKey.focus();
  }

  ui.authForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = ui.apiKey.value.trim();
    if (!key) return;
    storage("session")?.setItem(KEY_ITEM, key);
    ui.apiKey.value = "";
    ui.auth.hidden = true;
    loadModel();
  });

  // --- the conversation view ---

  function bubble(role, text) {
    ui.empty.hidden = true;
    const div = document.createElement("div");
    div.className = `msg ${role}`;
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    div.append(body);
    ui.log.append(div);
    scrollToEnd();
    return { div, body };
  }

  function addMeta(div, text) {
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = text;
    div.append(meta);
  }

  function scrollToEnd() {
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  function setGenerating(on) {
    ui.send.disabled = on;
    ui.stop.disabled = !on;
    document.body.dataset.state = on ? "generating" : "idle";
  }

  // --- streaming ---

  /**
   * The `data:` payloads of a server-sent event stream, read from a fetch body as it
   * arrives (EventSource cannot POST or send headers). Events end at a blank line.
   */
  async function* sseData(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const event = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const data = event
            .split("\n")
            .filter((line) => line.startsWith("data:"))
            .map((line) => line.slice(5).replace(/^ /, ""))
            .join("\n");
          if (data) yield data;
        }
      }
    } finally {
      // Leaving early (the [DONE] event, an error) closes the response.
      reader.cancel().catch(() => {});
    }
  }

  async function send(text) {
    const settings = readSettings();
    if (!settings) return;
    saveSettings();
    setStatus("");
    // New chat replaces `history`; this reply belongs to the conversation it started in.
    const conversation = history;
    conversation.push({ role: "user", content: text });
    bubble("user", text);
    const reply = bubble("assistant", "");
    reply.body.classList.add("streaming");

    const messages = settings.system
      ? [{ role: "system", content: settings.system }, ...conversation]
      : conversation.slice();
    const request = {
      messages,
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: settings.maxTokens,
      temperature: settings.temperature,
    };
    if (modelId) request.model = modelId;

    const mine = new AbortController();
    controller = mine;
    setGenerating(true);
    let answer = "";
    let pieces = 0;
    let finish = null;
    let usage = null;
    let decodeMs = null;
    let failure = null;
    let stopped = false;
    try {
      const resp = await fetch("v1/chat/completions", {
        method: "POST",
        headers: headers(),
        body: JSON.stringify(request),
        signal: mine.signal,
        cache: "no-store",
      });
      if (!resp.ok) {
        failure = await errorMessage(resp);
        if (resp.status === 401) askForKey(failure);
      } else {
        for await (const data of sseData(resp.body)) {
          if (data === "[DONE]") break;
          const chunk = JSON.parse(data);
          if (chunk.error) {
            failure = chunk.error.message ?? "the server reported an error";
            break;
          }
          if (chunk.usage) usage = chunk.usage;
          // bitnet-server's extension on the last chunk: the server's own decode time.
          if (Number.isFinite(chunk.bitnet?.timings?.decode_ms)) decodeMs = chunk.bitnet.timings.decode_ms;
          const choice = Array.isArray(chunk.choices) ? chunk.choices[0] : null;
          const piece = choice?.delta?.content;
          if (typeof piece === "string" && piece) {
            answer += piece;
            pieces += 1;
            reply.body.textContent = answer;
            scrollToEnd();
          }
          if (choice?.finish_reason) finish = choice.finish_reason;
        }
      }
    } catch (e) {
      if (e.name === "AbortError") stopped = true;
      else failure = e.message;
    } finally {
      if (controller === mine) controller = null;
      reply.body.classList.remove("streaming");
      setGenerating(controller !== null);
    }

    if (!answer && (failure || stopped)) {
      // Nothing came back: drop the turn from the history so the next request is well formed.
      conversation.pop();
      if (failure) {
        reply.div.className = "msg error";
        reply.body.textContent = failure;
      } else {
        addMeta(reply.div, "stopped before the first token");
        reply.div.dataset.stopped = "true";
      }
      return;
    }
    // A stopped or failed reply keeps what was generated, as the model's turn.
    conversation.push({ role: "assistant", content: answer });
    const tokens = usage?.completion_tokens ?? pieces;
    // The model's speed as the server measured it (the page's own timing would include the
    // network); a stopped reply has no final chunk and so no rate.
    const perSec = decodeMs > 0 ? tokens / (decodeMs / 1000) : 0;
    const rate = perSec > 0 ? `, ${perSec.toFixed(perSec >= 100 ? 0 : 1)} tokens/s` : "";
    let how = "";
    if (stopped) how = "stopped";
    else if (failure) how = `cut off: ${failure}`;
    else if (finish === "length") how = "reached max tokens";
    else if (finish === "stop") how = "end of reply";
    else if (finish) how = `finish: ${finish}`;
    addMeta(reply.div, `${tokens} token${tokens === 1 ? "" : "s"}${rate}${how ? ` · ${how}` : ""}`);
    if (stopped) reply.div.dataset.stopped = "true";
  }

  // --- controls ---

  ui.composer.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = ui.input.value.trim();
    if (!text || controller) return;
    ui.input.value = "";
    send(text);
  });

  ui.input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      ui.composer.requestSubmit();
    }
  });

  // Aborting the fetch closes the connection; the server then drops the request from its
  // decode batch (counted in bitnet_cancelled_requests_total).
  ui.stop.addEventListener("click", () => controller?.abort());

  ui.newChat.addEventListener("click", () => {
    // The aborted reply finishes in the background, into the old conversation; the new
    // one can start at once.
    controller?.abort();
    controller = null;
    setGenerating(false);
    history = [];
    for (const m of ui.log.querySelectorAll(".msg")) m.remove();
    ui.empty.hidden = false;
    setStatus("");
    ui.input.focus();
  });

  ui.settingsToggle.addEventListener("click", () => {
    ui.settings.hidden = !ui.settings.hidden;
    ui.settingsToggle.setAttribute("aria-expanded", String(!ui.settings.hidden));
  });
  for (const el of [ui.system, ui.temperature, ui.maxTokens]) {
    el.addEventListener("change", saveSettings);
  }

  loadSettings();
  setGenerating(false);
  loadModel();
  ui.input.focus();
})();
