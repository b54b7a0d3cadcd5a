// Conversations and settings, kept in the browser's localStorage (never sent anywhere but the chat API).
//
// Stored data is treated as untrusted too: anything malformed is dropped on load, not trusted.

const CONVERSATIONS_KEY = "qwenkit.conversations.v1";
const SETTINGS_KEY = "qwenkit.settings.v1";
const ROLES = new Set(["user", "assistant", "tool"]);

function newId() {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function readJson(key) {
  try {
    const raw = localStorage.getItem(key);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

function writeJson(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
    return true;
  } catch {
    return false; // storage full or disabled: the page keeps working, just without persistence
  }
}

const str = (v) => (typeof v === "string" ? v : "");

function cleanToolCalls(calls) {
  if (!Array.isArray(calls)) return undefined;
  const out = calls
    .filter((c) => c && c.function && typeof c.function.name === "string")
    .map((c) => ({
      id: str(c.id),
      type: "function",
      function: { name: c.function.name, arguments: str(c.function.arguments) },
    }));
  return out.length ? out : undefined;
}

function cleanImages(images) {
  if (!Array.isArray(images)) return undefined;
  const out = images
    .filter((i) => i && typeof i.url === "string" && /^data:image\/(png|jpeg|webp|gif|bmp);base64,/.test(i.url))
    .map((i) => ({ url: i.url, tokens: Number.isInteger(i.tokens) ? i.tokens : null }));
  return out.length ? out : undefined;
}

function cleanMessage(m) {
  if (!m || !ROLES.has(m.role)) return null;
  const msg = { role: m.role, content: str(m.content) };
  if (m.reasoning) msg.reasoning = str(m.reasoning);
  const calls = cleanToolCalls(m.tool_calls);
  if (calls) msg.tool_calls = calls;
  if (m.tool_call_id) msg.tool_call_id = str(m.tool_call_id);
  if (m.error) msg.error = str(m.error);
  if (m.stopped) msg.stopped = true;
  if (m.stats && typeof m.stats === "object") msg.stats = { ...m.stats };
  const images = cleanImages(m.images);
  if (images) msg.images = images;
  return msg;
}

function cleanConversation(c) {
  if (!c || typeof c.id !== "string") return null;
  return {
    id: c.id,
    title: str(c.title),
    titled: Boolean(c.titled),
    system: str(c.system),
    created: Number(c.created) || Date.now(),
    updated: Number(c.updated) || Date.now(),
    messages: Array.isArray(c.messages) ? c.messages.map(cleanMessage).filter(Boolean) : [],
  };
}

export function createConversation() {
  const now = Date.now();
  return { id: newId(), title: "New conversation", titled: false, system: "", created: now, updated: now,
    messages: [] };
}

/** All conversations (newest first) and the id of the one shown last. */
export function loadConversations() {
  const data = readJson(CONVERSATIONS_KEY) || {};
  const list = Array.isArray(data.conversations)
    ? data.conversations.map(cleanConversation).filter(Boolean)
    : [];
  list.sort((a, b) => b.updated - a.updated);
  return { conversations: list, currentId: typeof data.currentId === "string" ? data.currentId : null };
}

export function saveConversations(conversations, currentId) {
  return writeJson(CONVERSATIONS_KEY, { conversations, currentId });
}

export function loadSettings(defaults) {
  const saved = readJson(SETTINGS_KEY);
  const out = { ...defaults };
  if (saved && typeof saved === "object") {
    for (const key of Object.keys(defaults)) {
      if (typeof saved[key] === typeof defaults[key]) out[key] = saved[key];
    }
  }
  return out;
}

export function saveSettings(settings) {
  writeJson(SETTINGS_KEY, settings);
}

/** A short title from the first user message. */
export function titleFrom(text) {
  const line = text.trim().split("\n")[0].replace(/\s+/g, " ");
  return line.length > 48 ? `${line.slice(0, 47)}…` : line || "New conversation";
}
