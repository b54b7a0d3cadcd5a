// Talking to the server: same origin only, an optional API key kept in sessionStorage, SSE parsing.

const KEY_STORAGE = "qwenkit.apiKey";

export class ApiError extends Error {
  constructor(status, message, type) {
    super(message);
    this.status = status;
    this.type = type || "error";
  }
}

export const apiKey = {
  get() {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  },
  set(value) {
    if (value) sessionStorage.setItem(KEY_STORAGE, value);
    else sessionStorage.removeItem(KEY_STORAGE);
  },
};

function headers(extra) {
  const h = { ...extra };
  const key = apiKey.get();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function errorFrom(response) {
  let message = `${response.status} ${response.statusText}`;
  let type;
  try {
    const body = await response.json();
    if (body && body.error && typeof body.error.message === "string") {
      message = body.error.message;
      type = body.error.type;
    }
  } catch {
    // Not JSON: the status line says enough.
  }
  return new ApiError(response.status, message, type);
}

/**
 * fetch() a same-origin path with the key; on a 401, ``askKey()`` is awaited for a new key (null gives
 * up) and the request is tried again.
 */
export async function apiFetch(path, init, askKey) {
  if (!path.startsWith("/")) throw new Error("only same-origin paths are fetched");
  for (;;) {
    const response = await fetch(path, {
      ...init,
      headers: headers(init && init.headers),
      credentials: "same-origin",
      cache: "no-store",
    });
    if (response.ok) return response;
    const error = await errorFrom(response);
    if (response.status === 401 && askKey) {
      const key = await askKey(error.message);
      if (key) {
        apiKey.set(key);
        continue;
      }
    }
    throw error;
  }
}

export async function listModels(askKey) {
  const response = await apiFetch("/v1/models", { method: "GET" }, askKey);
  const body = await response.json();
  return Array.isArray(body.data) ? body.data : [];
}

export const DONE = Symbol("done");

/**
 * Yield every SSE ``data:`` payload of ``response`` parsed as JSON, then ``DONE`` at ``[DONE]``; a
 * stream that just stops (connection closed) never yields ``DONE``.
 */
export async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    buffer = buffer.replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) !== -1) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = event
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (!data) continue;
      if (data === "[DONE]") {
        yield DONE;
        return;
      }
      yield JSON.parse(data);
    }
    if (done) return;
  }
}
