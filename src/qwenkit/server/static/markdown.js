// A small, safe Markdown renderer for untrusted model output.
//
// It never parses HTML: every piece of text reaches the page through textContent or a text node, and
// the only elements it creates are the fixed set below. Links are made only for http(s) URLs, open in a
// new tab with rel="noopener noreferrer nofollow"; images are never loaded (they become links).

import { highlightInto } from "./codehl.js";

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const ITEM = /^( *)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;
const SAFE_URL = /^https?:\/\/[^\s<>"]+$/i;
const BARE_URL = /https?:\/\/[^\s<>"'`)\]]*[^\s<>"'`)\].,;:!?]/iy;
const MAX_DEPTH = 8;

function el(tag, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  return node;
}

function isBlank(line) {
  return line.trim() === "";
}

function startsBlock(line, next) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) ||
    ITEM.test(line) || (line.includes("|") && next !== undefined && TABLE_SEP.test(next));
}

// ---- inline -------------------------------------------------------------------------------------

export function safeLink(url, label) {
  const a = el("a");
  a.href = url;
  a.textContent = label;
  a.target = "_blank";
  a.rel = "noopener noreferrer nofollow";
  a.referrerPolicy = "no-referrer";
  return a;
}

function findClosing(text, delim, from) {
  let i = text.indexOf(delim, from);
  while (i !== -1) {
    if (text[i - 1] !== "\\" && !/\s/.test(text[i - 1] || " ")) return i;
    i = text.indexOf(delim, i + 1);
  }
  return -1;
}

// [label](url "title") starting at text[i] === "[": returns {label, url, end} or null.
function parseLink(text, i) {
  let depth = 0;
  let j = i;
  for (; j < text.length; j++) {
    if (text[j] === "\\") { j++; continue; }
    if (text[j] === "[") depth++;
    else if (text[j] === "]" && --depth === 0) break;
  }
  if (j >= text.length || text[j + 1] !== "(") return null;
  const close = text.indexOf(")", j + 2);
  if (close === -1) return null;
  const inside = text.slice(j + 2, close).trim();
  const url = inside.replace(/^<|>$/g, "").split(/\s+/)[0] || "";
  return { label: text.slice(i + 1, j), url, end: close + 1 };
}

const EMPHASIS = [
  { delim: "**", tag: "strong" },
  { delim: "__", tag: "strong", word: true },
  { delim: "~~", tag: "del" },
  { delim: "*", tag: "em" },
  { delim: "_", tag: "em", word: true },
];

function tryEmphasis(text, i, out, depth) {
  for (const { delim, tag, word } of EMPHASIS) {
    if (!text.startsWith(delim, i)) continue;
    const after = text[i + delim.length];
    if (after === undefined || /\s/.test(after)) continue;
    if (word && /\w/.test(text[i - 1] || "")) continue;
    const end = findClosing(text, delim, i + delim.length);
    if (end === -1 || end === i + delim.length) continue;
    if (word && /\w/.test(text[end + delim.length] || "")) continue;
    const node = el(tag);
    renderInline(text.slice(i + delim.length, end), node, depth + 1);
    out.appendChild(node);
    return end + delim.length;
  }
  return -1;
}

function tryCode(text, i, out) {
  const run = /^`+/.exec(text.slice(i))[0];
  const end = text.indexOf(run, i + run.length);
  if (end === -1) return -1;
  const code = el("code", "inline");
  let body = text.slice(i + run.length, end);
  if (body.length > 2 && body.startsWith(" ") && body.endsWith(" ")) body = body.slice(1, -1);
  code.textContent = body;
  out.appendChild(code);
  return end + run.length;
}

function tryLink(text, i, out, depth, image) {
  const link = parseLink(text, image ? i + 1 : i);
  if (!link) return -1;
  if (SAFE_URL.test(link.url)) {
    const label = image ? `image: ${link.label || link.url}` : "";
    const a = safeLink(link.url, label);
    if (!image) renderInline(link.label, a, depth + 1);
    out.appendChild(a);
  } else {
    // Not http(s) (javascript:, data:, relative...): the label stays, as plain text, and no link.
    renderInline(link.label, out, depth + 1);
  }
  return link.end;
}

function tryAngleLink(text, i, out) {
  const close = text.indexOf(">", i);
  if (close === -1) return -1;
  const url = text.slice(i + 1, close);
  if (!SAFE_URL.test(url)) return -1;
  out.appendChild(safeLink(url, url));
  return close + 1;
}

function tryBareUrl(text, i, out) {
  if (/\w/.test(text[i - 1] || "")) return -1;
  BARE_URL.lastIndex = i;
  const m = BARE_URL.exec(text);
  if (!m) return -1;
  out.appendChild(safeLink(m[0], m[0]));
  return i + m[0].length;
}

function inlineStep(text, i, out, depth) {
  const c = text[i];
  if (c === "`") return tryCode(text, i, out);
  if (c === "[") return tryLink(text, i, out, depth, false);
  if (c === "!" && text[i + 1] === "[") return tryLink(text, i, out, depth, true);
  if (c === "<") return tryAngleLink(text, i, out);
  if (c === "h" || c === "H") return tryBareUrl(text, i, out);
  if (c === "*" || c === "_" || c === "~") return tryEmphasis(text, i, out, depth);
  return -1;
}

/** Append ``text``'s inline Markdown (code, emphasis, links) to ``out``, as text nodes and elements. */
export function renderInline(text, out, depth = 0) {
  if (depth > MAX_DEPTH) {
    out.appendChild(document.createTextNode(text));
    return;
  }
  let plain = "";
  const flush = () => {
    if (plain) out.appendChild(document.createTextNode(plain));
    plain = "";
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "\\" && i + 1 < text.length && /[!-/:-@[-`{-~]/.test(text[i + 1])) {
      plain += text[i + 1];
      i += 2;
      continue;
    }
    if ("`[!<hH*_~".includes(c)) {
      const built = document.createDocumentFragment();
      const next = inlineStep(text, i, built, depth);
      if (next > i) {
        flush();
        out.appendChild(built);
        i = next;
        continue;
      }
    }
    plain += c;
    i++;
  }
  flush();
}

// ---- blocks -------------------------------------------------------------------------------------

function codeBlock(lang, code, out) {
  const wrap = el("div", "code-block");
  const bar = el("div", "code-bar");
  const name = el("span", "code-lang");
  name.textContent = lang || "text";
  const copy = el("button", "code-copy");
  copy.type = "button";
  copy.textContent = "Copy";
  copy.dataset.copy = "code";
  bar.append(name, copy);
  const pre = el("pre");
  const codeEl = el("code");
  if (lang) codeEl.dataset.lang = lang;
  highlightInto(codeEl, code, lang);
  pre.appendChild(codeEl);
  wrap.append(bar, pre);
  out.appendChild(wrap);
}

function splitRow(line) {
  let row = line.trim();
  if (row.startsWith("|")) row = row.slice(1);
  if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
  return row.split(/(?<!\\)\|/).map((cell) => cell.trim().replace(/\\\|/g, "|"));
}

function table(lines, i, out, depth) {
  const head = splitRow(lines[i]);
  const aligns = splitRow(lines[i + 1]).map((s) =>
    s.startsWith(":") && s.endsWith(":") ? "center" : s.endsWith(":") ? "right" : "");
  const tableEl = el("table");
  const addRow = (cells, parent, tag) => {
    const tr = el("tr");
    head.forEach((_, k) => {
      const cell = el(tag, aligns[k] ? `align-${aligns[k]}` : "");
      renderInline(cells[k] || "", cell, depth);
      tr.appendChild(cell);
    });
    parent.appendChild(tr);
  };
  const thead = el("thead");
  addRow(head, thead, "th");
  const tbody = el("tbody");
  let j = i + 2;
  for (; j < lines.length && lines[j].includes("|") && !isBlank(lines[j]); j++) {
    addRow(splitRow(lines[j]), tbody, "td");
  }
  tableEl.append(thead, tbody);
  const scroll = el("div", "table-wrap");
  scroll.appendChild(tableEl);
  out.appendChild(scroll);
  return j;
}

function fenced(lines, i, out) {
  const [, fence, lang] = FENCE.exec(lines[i]);
  const body = [];
  let j = i + 1;
  for (; j < lines.length; j++) {
    const trimmed = lines[j].trim();
    if (trimmed.startsWith(fence[0].repeat(fence.length)) && /^[`~]+$/.test(trimmed)) {
      j++;
      break;
    }
    body.push(lines[j]);
  }
  codeBlock(lang.toLowerCase(), body.join("\n"), out);
  return j;
}

function list(lines, i, out, depth) {
  const first = ITEM.exec(lines[i]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const listEl = el(ordered ? "ol" : "ul");
  if (ordered && parseInt(first[2], 10) !== 1) listEl.start = parseInt(first[2], 10);
  const items = [];
  let j = i;
  while (j < lines.length) {
    const m = ITEM.exec(lines[j]);
    if (m && m[1].length === indent && /\d/.test(m[2]) === ordered) {
      items.push([m[3]]);
      j++;
      continue;
    }
    if (isBlank(lines[j])) {
      const next = lines[j + 1];
      if (next === undefined || !(next.startsWith(" ".repeat(indent + 1)) || ITEM.test(next))) break;
      items[items.length - 1].push("");
      j++;
      continue;
    }
    const lead = lines[j].length - lines[j].trimStart().length;
    if (lead <= indent && (ITEM.test(lines[j]) || startsBlock(lines[j], lines[j + 1]))) break;
    items[items.length - 1].push(lines[j].slice(Math.min(lead, indent + 2)));
    j++;
  }
  for (const itemLines of items) {
    const li = el("li");
    const loose = itemLines.some(isBlank);
    const rest = itemLines.slice(1);
    if (!loose && !rest.some((l, k) => startsBlock(l, rest[k + 1]))) {
      renderInline(itemLines.map((l) => l.trim()).join("\n"), li, depth);
    } else {
      renderBlocks(itemLines, li, depth + 1);
    }
    listEl.appendChild(li);
  }
  out.appendChild(listEl);
  return j;
}

function paragraph(lines, i, out, depth) {
  const body = [];
  let j = i;
  while (j < lines.length && !isBlank(lines[j]) && (j === i || !startsBlock(lines[j], lines[j + 1]))) {
    body.push(lines[j].trim());
    j++;
  }
  const p = el("p");
  renderInline(body.join("\n"), p, depth);
  out.appendChild(p);
  return j;
}

function quote(lines, i, out, depth) {
  const body = [];
  let j = i;
  for (; j < lines.length && QUOTE.test(lines[j]); j++) body.push(QUOTE.exec(lines[j])[1]);
  const bq = el("blockquote");
  renderBlocks(body, bq, depth + 1);
  out.appendChild(bq);
  return j;
}

function block(lines, i, out, depth) {
  const line = lines[i];
  if (FENCE.test(line)) return fenced(lines, i, out);
  const heading = HEADING.exec(line);
  if (heading) {
    const h = el(`h${Math.min(heading[1].length + 2, 6)}`);
    renderInline(heading[2], h, depth);
    out.appendChild(h);
    return i + 1;
  }
  if (RULE.test(line)) {
    out.appendChild(el("hr"));
    return i + 1;
  }
  if (depth < MAX_DEPTH && QUOTE.test(line)) return quote(lines, i, out, depth);
  if (depth < MAX_DEPTH && ITEM.test(line)) return list(lines, i, out, depth);
  if (line.includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1])) {
    return table(lines, i, out, depth);
  }
  return paragraph(lines, i, out, depth);
}

function renderBlocks(lines, out, depth) {
  let i = 0;
  while (i < lines.length) {
    if (isBlank(lines[i])) {
      i++;
      continue;
    }
    i = block(lines, i, out, depth);
  }
}

/** Replace ``container``'s children with ``text`` rendered as Markdown (an unclosed code fence, as
 * while streaming, renders as a code block up to the end). */
export function renderMarkdown(text, container) {
  const frag = document.createDocumentFragment();
  renderBlocks(String(text).replace(/\r\n?/g, "\n").split("\n"), frag, 0);
  container.replaceChildren(frag);
}
