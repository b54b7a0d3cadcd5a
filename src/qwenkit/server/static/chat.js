// One streamed chat completion: the request body, the SSE deltas folded into a message, the figures.

import { ApiError, apiFetch, DONE, sseEvents } from "./api.js";

/** The messages to send: the system prompt, then the conversation (reasoning is never sent back). */
export function requestMessages(conv, upTo) {
  const out = [];
  if (conv.system.trim()) out.push({ role: "system", content: conv.system });
  for (const m of conv.messages.slice(0, upTo)) {
    if (m.role === "assistant") {
      if (!m.content && !(m.tool_calls && m.tool_calls.length)) continue; // a failed or empty answer
      const msg = { role: "assistant", content: m.content };
      if (m.tool_calls) msg.tool_calls = m.tool_calls;
      out.push(msg);
    } else if (m.role === "tool") {
      out.push({ role: "tool", content: m.content, tool_call_id: m.tool_call_id || "" });
    } else if (m.images && m.images.length) {
      const parts = m.images.map((image) => ({ type: "image_url", image_url: { url: image.url } }));
      if (m.content) parts.push({ type: "text", text: m.content });
      out.push({ role: "user", content: parts });
    } else {
      out.push({ role: "user", content: m.content });
    }
  }
  return out;
}

function mergeToolCalls(msg, deltas) {
  msg.tool_calls = msg.tool_calls || [];
  for (const d of deltas) {
    const index = Number.isInteger(d.index) ? d.index : msg.tool_calls.length;
    const call = msg.tool_calls[index] ||
      (msg.tool_calls[index] = { id: "", type: "function", function: { name: "", arguments: "" } });
    if (d.id) call.id = d.id;
    const fn = d.function || {};
    if (typeof fn.name === "string") call.function.name += fn.name;
    if (typeof fn.arguments === "string") call.function.arguments += fn.arguments;
  }
}

/** Timing of one answer, measured here from the stream (the server's usage gives the token counts). */
class Clock {
  constructor() {
    this.start = performance.now();
    this.first = null;
    this.reasoningEnd = null;
    this.pieces = 0;
    this.sawReasoning = false;
    this.usage = null;
  }

  piece(isAnswer) {
    const now = performance.now();
    if (this.first === null) this.first = now;
    if (isAnswer && this.reasoningEnd === null) this.reasoningEnd = now;
    this.pieces += 1;
  }

  figures(usage) {
    const end = performance.now();
    const out = { elapsed_ms: end - this.start };
    if (this.first !== null) out.ttft_ms = this.first - this.start;
    const tokens = usage && Number.isInteger(usage.completion_tokens) ? usage.completion_tokens : this.pieces;
    out.completion_tokens = tokens;
    out.estimated = !usage;
    if (usage) {
      out.prompt_tokens = usage.prompt_tokens;
      out.total_tokens = usage.total_tokens;
    }
    // Decode speed: tokens after the first, over the time after the first.
    const span = this.first === null ? 0 : (end - this.first) / 1000;
    if (tokens > 1 && span > 0) out.decode_tps = (tokens - 1) / span;
    if (this.first !== null && this.reasoningEnd !== null && this.sawReasoning) {
      out.reasoning_ms = this.reasoningEnd - this.first;
    }
    return out;
  }
}

function applyChunk(chunk, msg, clock) {
  if (chunk.error) {
    throw new ApiError(500, chunk.error.message || "the server reported an error", chunk.error.type);
  }
  if (chunk.usage) clock.usage = chunk.usage;
  const choice = (chunk.choices || []).find((c) => (c.index || 0) === 0);
  if (!choice) return;
  const delta = choice.delta || {};
  const reasoning = delta.reasoning_content ?? delta.reasoning;
  if (typeof reasoning === "string" && reasoning) {
    msg.reasoning = (msg.reasoning || "") + reasoning;
    clock.sawReasoning = true;
    clock.piece(false);
  }
  if (typeof delta.content === "string" && delta.content) {
    msg.content += delta.content;
    clock.piece(true);
  }
  if (Array.isArray(delta.tool_calls) && delta.tool_calls.length) {
    mergeToolCalls(msg, delta.tool_calls);
    clock.piece(true);
  }
  if (choice.finish_reason) msg.finish_reason = choice.finish_reason;
}

/**
 * Stream one answer into ``msg`` (mutated in place; ``onUpdate(liveFigures)`` after each chunk).
 * Resolves when the stream ends; an abort (the Stop button) marks the message stopped.
 */
export async function streamAnswer({ body, msg, signal, onUpdate, askKey }) {
  const clock = new Clock();
  let finished = false;
  try {
    const response = await apiFetch("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify(body),
      signal,
    }, askKey);
    for await (const chunk of sseEvents(response)) {
      if (chunk === DONE) {
        finished = true;
        break;
      }
      applyChunk(chunk, msg, clock);
      onUpdate(clock.figures(clock.usage));
    }
    if (!finished) msg.error = "the connection closed before the answer was complete";
  } catch (err) {
    if (err && err.name === "AbortError") msg.stopped = true;
    else msg.error = err && err.message ? err.message : String(err);
  }
  msg.stats = { ...clock.figures(clock.usage), finish_reason: msg.finish_reason };
  delete msg.finish_reason;
  return msg;
}
