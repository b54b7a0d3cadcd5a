// The playground page: conversations, the composer, the model panel and the settings.

import { requestMessages, streamAnswer } from "./chat.js";
import { Attachments, imageFiles } from "./images.js";
import { askKey, initKeyDialog } from "./keys.js";
import { Panel } from "./panel.js";
import * as store from "./store.js";
import { MessageView } from "./view.js";

const $ = (id) => document.getElementById(id);
const SAVE_EVERY_MS = 1000;

const ui = {
  conversations: [],
  currentId: null,
  active: null, // the answer being streamed: {conv, msg, controller}
  views: new Map(), // message -> MessageView, for the conversation on screen
  lastSave: 0,
  deleteTimer: null,
};

const current = () => ui.conversations.find((c) => c.id === ui.currentId);
const panel = new Panel(setStatus);
const attachments = new Attachments($("attachments"), (message) => setStatus(message, true));

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function persist(force = true) {
  const now = Date.now();
  if (!force && now - ui.lastSave < SAVE_EVERY_MS) return;
  ui.lastSave = now;
  if (!store.saveConversations(ui.conversations, ui.currentId)) {
    setStatus("The browser refused to store the conversations (storage full or disabled).", true);
  }
}

// ---- conversations ------------------------------------------------------------------------------

function renderList() {
  const list = $("conversation-list");
  list.replaceChildren(...ui.conversations.map((conv) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = conv.id === ui.currentId ? "conv-item current" : "conv-item";
    b.dataset.id = conv.id;
    b.textContent = conv.title || "New conversation";
    b.title = conv.title;
    li.appendChild(b);
    return li;
  }));
}

function renderMessages() {
  const conv = current();
  const box = $("messages");
  ui.views.clear();
  box.replaceChildren();
  $("chat-title").textContent = conv.title || "New conversation";
  $("system-prompt").value = conv.system;
  conv.messages.forEach((msg) => {
    const view = new MessageView(msg);
    ui.views.set(msg, view);
    box.appendChild(view.root);
  });
  refreshViews();
  updateSendRole();
  box.scrollTop = box.scrollHeight;
}

function refreshViews() {
  const conv = current();
  const last = conv.messages[conv.messages.length - 1];
  for (const [msg, view] of ui.views) {
    const streaming = ui.active !== null && ui.active.msg === msg;
    view.update(msg, { streaming, isLast: msg === last && !ui.active });
  }
}

function selectConversation(id) {
  ui.currentId = id;
  persist();
  renderList();
  renderMessages();
}

function newConversation() {
  const conv = store.createConversation();
  ui.conversations.unshift(conv);
  selectConversation(conv.id);
  $("prompt").focus();
}

function startRename() {
  const conv = current();
  const title = $("chat-title");
  const input = document.createElement("input");
  input.id = "rename-input";
  input.value = conv.title;
  input.setAttribute("aria-label", "Conversation name");
  let done = false;
  const finish = (save) => {
    if (done) return;
    done = true;
    const name = input.value.trim();
    if (save && name) {
      conv.title = name;
      conv.titled = true;
      conv.updated = Date.now();
      persist();
      renderList();
    }
    input.replaceWith(title);
    title.textContent = conv.title;
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") finish(true);
    if (e.key === "Escape") finish(false);
  });
  input.addEventListener("blur", () => finish(true));
  title.replaceWith(input);
  input.focus();
  input.select();
}

function deleteConversation() {
  const b = $("delete-chat");
  if (!ui.deleteTimer) { // two clicks: the first arms the button for a few seconds
    b.textContent = "Really delete?";
    ui.deleteTimer = setTimeout(() => { b.textContent = "Delete"; ui.deleteTimer = null; }, 4000);
    return;
  }
  clearTimeout(ui.deleteTimer);
  ui.deleteTimer = null;
  b.textContent = "Delete";
  const conv = current();
  if (ui.active && ui.active.conv === conv) ui.active.controller.abort();
  ui.conversations = ui.conversations.filter((c) => c !== conv);
  if (!ui.conversations.length) ui.conversations.push(store.createConversation());
  selectConversation(ui.conversations[0].id);
}

// ---- sending ------------------------------------------------------------------------------------

function setBusy(busy) {
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  $("send").disabled = busy;
}

function addMessage(conv, msg) {
  conv.messages.push(msg);
  conv.updated = Date.now();
  if (conv.id === ui.currentId) {
    const view = new MessageView(msg);
    ui.views.set(msg, view);
    $("messages").appendChild(view.root);
  }
}

async function answer(conv) {
  let body;
  try {
    body = {
      ...panel.requestFields(),
      messages: requestMessages(conv, conv.messages.length),
      stream: true,
      stream_options: { include_usage: true },
    };
  } catch {
    setStatus("Fix the tools JSON first.", true);
    return;
  }
  const msg = { role: "assistant", content: "" };
  addMessage(conv, msg);
  const controller = new AbortController();
  ui.active = { conv, msg, controller };
  setBusy(true);
  setStatus("Generating…");
  refreshViews();
  let frame = 0;
  const onUpdate = (figures) => {
    panel.showFigures(figures);
    persist(false);
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      const box = $("messages");
      const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
      if (conv.id === ui.currentId) ui.views.get(msg)?.update(msg, { streaming: true });
      if (stick) box.scrollTop = box.scrollHeight;
    });
  };
  await streamAnswer({ body, msg, signal: controller.signal, onUpdate, askKey });
  if (frame) cancelAnimationFrame(frame);
  ui.active = null;
  conv.updated = Date.now();
  setBusy(false);
  panel.showFigures(msg.stats);
  panel.showKeyState();
  setStatus(msg.error ? `Error: ${msg.error}` : msg.stopped ? "Stopped." : "", Boolean(msg.error));
  persist();
  if (conv.id === ui.currentId) {
    refreshViews();
    updateSendRole();
  }
}

function pendingToolCall(conv) {
  let last = conv.messages.length - 1;
  const answered = new Set();
  while (last >= 0 && conv.messages[last].role === "tool") answered.add(conv.messages[last--].tool_call_id);
  const m = conv.messages[last];
  if (!m || m.role !== "assistant" || !m.tool_calls) return null;
  return m.tool_calls.find((c) => !answered.has(c.id)) || null;
}

function updateSendRole() {
  const pending = pendingToolCall(current());
  const select = $("send-role");
  select.options[1].disabled = !pending;
  select.options[1].textContent = pending ? `tool: ${pending.function.name}` : "tool result";
  select.value = pending ? "tool" : "user";
}

function send(event) {
  event.preventDefault();
  if (ui.active) return;
  const text = $("prompt").value;
  const role = $("send-role").value;
  if (!text.trim() && (role === "tool" || !attachments.items.length)) return;
  const conv = current();
  const msg = { role: role === "tool" ? "tool" : "user", content: text };
  if (msg.role === "tool") msg.tool_call_id = pendingToolCall(conv)?.id || "";
  else if (attachments.items.length) msg.images = attachments.take();
  if (msg.role === "user" && !conv.titled && !conv.messages.some((m) => m.role === "user")) {
    conv.title = store.titleFrom(text.trim() ? text : "Image");
    $("chat-title").textContent = conv.title;
  }
  $("prompt").value = "";
  addMessage(conv, msg);
  ui.conversations.sort((a, b) => b.updated - a.updated);
  renderList();
  answer(conv);
}

function regenerate() {
  const conv = current();
  if (ui.active || conv.messages[conv.messages.length - 1]?.role !== "assistant") return;
  const msg = conv.messages.pop();
  ui.views.get(msg)?.root.remove();
  ui.views.delete(msg);
  answer(conv);
}

async function copyText(text, buttonEl) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = document.createElement("textarea"); // plain http on another host: no clipboard API
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  const label = buttonEl.textContent;
  buttonEl.textContent = "Copied";
  setTimeout(() => { buttonEl.textContent = label; }, 1200);
}

function onMessagesClick(event) {
  const b = event.target.closest("button");
  if (!b) return;
  if (b.dataset.copy === "code") {
    copyText(b.closest(".code-block").querySelector("code").textContent, b);
    return;
  }
  const article = b.closest("article");
  const msg = [...ui.views].find(([, v]) => v.root === article)?.[0];
  if (!msg) return;
  if (b.dataset.action === "copy") copyText(msg.content, b);
  if (b.dataset.action === "regenerate") regenerate();
}

// ---- wiring -------------------------------------------------------------------------------------

function bindSystemPrompt() {
  $("system-prompt").addEventListener("input", () => {
    current().system = $("system-prompt").value;
    persist(false);
  });
  $("system-prompt").addEventListener("change", () => persist());
}

function attach(files) {
  if (!files.length) return;
  setStatus("Reading the image…");
  attachments.add(files, panel.card()?.id, askKey).then(() => {
    if ($("status").textContent === "Reading the image…") setStatus("");
  });
}

function bindImages() {
  $("attach").addEventListener("click", () => $("image-input").click());
  $("image-input").addEventListener("change", () => {
    attach([...$("image-input").files]);
    $("image-input").value = "";
  });
  $("prompt").addEventListener("paste", (e) => {
    const files = imageFiles(e.clipboardData);
    if (files.length) {
      e.preventDefault();
      attach(files);
    }
  });
  const composer = $("composer");
  composer.addEventListener("dragover", (e) => {
    if ([...e.dataTransfer.items].some((item) => item.kind === "file")) e.preventDefault();
  });
  composer.addEventListener("drop", (e) => {
    const files = imageFiles(e.dataTransfer);
    if (files.length) {
      e.preventDefault();
      attach(files);
    }
  });
}

function bindActions() {
  $("composer").addEventListener("submit", send);
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) send(e);
  });
  $("stop").addEventListener("click", () => ui.active && ui.active.controller.abort());
  $("new-chat").addEventListener("click", newConversation);
  $("rename-chat").addEventListener("click", startRename);
  $("delete-chat").addEventListener("click", deleteConversation);
  $("conversation-list").addEventListener("click", (e) => {
    const b = e.target.closest("button.conv-item");
    if (b) selectConversation(b.dataset.id);
  });
  $("messages").addEventListener("click", onMessagesClick);
  bindImages();
  window.addEventListener("beforeunload", () => persist());
}

function boot() {
  const saved = store.loadConversations();
  ui.conversations = saved.conversations;
  if (!ui.conversations.length) ui.conversations.push(store.createConversation());
  const known = ui.conversations.some((c) => c.id === saved.currentId);
  ui.currentId = known ? saved.currentId : ui.conversations[0].id;
  initKeyDialog();
  panel.bind();
  bindSystemPrompt();
  bindActions();
  renderList();
  renderMessages();
  panel.showKeyState();
  panel.loadModels();
}

boot();
