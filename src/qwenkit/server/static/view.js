// The DOM of one chat message. Model text goes through renderMarkdown (or textContent) only.

import { highlightInto } from "./codehl.js";
import { renderMarkdown } from "./markdown.js";

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(label, action, title) {
  const b = el("button", "small-button", label);
  b.type = "button";
  b.dataset.action = action;
  if (title) b.title = title;
  return b;
}

export function formatMs(ms) {
  if (ms === undefined || ms === null || !Number.isFinite(ms)) return "–";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function formatRate(rate) {
  return Number.isFinite(rate) && rate > 0 ? `${rate.toFixed(1)} tok/s` : "–";
}

function prettyArguments(text) {
  try {
    return { code: JSON.stringify(JSON.parse(text), null, 2), lang: "json" };
  } catch {
    return { code: text, lang: "" };
  }
}

function toolCallBlock(call) {
  const box = el("div", "tool-call");
  const head = el("div", "tool-call-head");
  head.append(el("span", "tool-call-label", "Tool call"), el("code", "tool-call-name", call.function.name));
  if (call.id) head.append(el("span", "muted small tool-call-id", call.id));
  const pre = el("pre", "tool-call-args");
  const code = el("code");
  const { code: text, lang } = prettyArguments(call.function.arguments || "");
  highlightInto(code, text, lang);
  pre.appendChild(code);
  box.append(head, pre);
  return box;
}

/** A user's images as thumbnails, each with the image tokens it cost. */
function imageStrip(images) {
  const strip = el("div", "msg-images");
  images.forEach((image, i) => {
    const figure = el("figure", "attachment");
    const img = el("img");
    img.src = image.url;
    img.alt = `image ${i + 1}`;
    figure.appendChild(img);
    if (Number.isInteger(image.tokens)) figure.appendChild(el("figcaption", "image-tokens", `${image.tokens} image tokens`));
    strip.appendChild(figure);
  });
  return strip;
}

function statsLine(msg) {
  const s = msg.stats || {};
  const parts = [];
  if (s.completion_tokens !== undefined) parts.push(`${s.completion_tokens} tokens`);
  if (s.decode_tps) parts.push(formatRate(s.decode_tps));
  if (s.ttft_ms !== undefined) parts.push(`first token ${formatMs(s.ttft_ms)}`);
  if (s.finish_reason) parts.push(`finish: ${s.finish_reason}`);
  if (msg.stopped) parts.push("stopped");
  return parts.join(" · ");
}

/** One message on screen; ``update`` re-renders it as it streams. */
export class MessageView {
  constructor(msg) {
    this.root = el("article", `msg msg-${msg.role}`);
    this.root.dataset.role = msg.role;
    const callId = msg.tool_call_id ? ` · ${msg.tool_call_id}` : "";
    const label = msg.role === "tool" ? `tool result${callId}` : msg.role;
    this.root.appendChild(el("div", "msg-role", label));
    this.reasoning = null;
    if (msg.images && msg.images.length) this.root.appendChild(imageStrip(msg.images));
    this.body = el("div", msg.role === "assistant" ? "msg-body markdown" : "msg-body plain");
    this.tools = el("div", "tool-calls");
    this.error = el("div", "msg-error");
    this.footer = el("div", "msg-footer");
    this.root.append(this.body, this.tools, this.error, this.footer);
    this.collapsedOnce = false;
    this.shownTools = -1;
  }

  ensureReasoning() {
    if (this.reasoning) return this.reasoning;
    const details = el("details", "reasoning");
    details.open = true;
    const summary = el("summary", "reasoning-summary", "Thinking…");
    const body = el("div", "reasoning-body");
    details.append(summary, body);
    this.root.insertBefore(details, this.body);
    this.reasoning = { details, summary, body };
    return this.reasoning;
  }

  updateReasoning(msg, streaming) {
    if (!msg.reasoning) return;
    const r = this.ensureReasoning();
    r.body.textContent = msg.reasoning;
    const thinkingNow = streaming && !msg.content && !(msg.tool_calls && msg.tool_calls.length);
    const took = msg.stats && msg.stats.reasoning_ms;
    const done = took ? `Reasoning (${formatMs(took)})` : "Reasoning";
    r.summary.textContent = thinkingNow ? "Thinking…" : done;
    r.details.classList.toggle("live", thinkingNow);
    if (!thinkingNow && !this.collapsedOnce && msg.content) {
      r.details.open = false; // the answer has begun: fold the reasoning away (one click reopens it)
      this.collapsedOnce = true;
    }
  }

  updateFooter(msg, { streaming, isLast }) {
    this.footer.replaceChildren();
    if (msg.role !== "assistant") return;
    const meta = el("span", "msg-meta", streaming ? "streaming…" : statsLine(msg));
    this.footer.appendChild(meta);
    if (streaming) return;
    this.footer.appendChild(button("Copy", "copy", "Copy the answer as Markdown"));
    if (isLast) this.footer.appendChild(button("Regenerate", "regenerate", "Answer this again"));
  }

  update(msg, { streaming = false, isLast = false } = {}) {
    this.root.classList.toggle("streaming", streaming);
    this.updateReasoning(msg, streaming);
    if (msg.role === "assistant") renderMarkdown(msg.content || "", this.body);
    else this.body.textContent = msg.content;
    const calls = msg.tool_calls || [];
    const signature = JSON.stringify(calls);
    if (signature !== this.shownTools) {
      this.tools.replaceChildren(...calls.map(toolCallBlock));
      this.shownTools = signature;
    }
    this.error.textContent = msg.error || "";
    this.error.hidden = !msg.error;
    this.updateFooter(msg, { streaming, isLast });
  }
}
