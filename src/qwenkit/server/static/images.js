// Images attached to the next message: read from a file, a paste or a drop, shown as thumbnails with
// the number of image tokens the server counts for them (POST /tokenize: the server's own resize rule).

import { apiFetch } from "./api.js";

// The server resizes every image to at most this many pixels unless a request asks otherwise; a larger
// picture is scaled down here first, so that its data: URL stays well inside the server's body limit.
export const MAX_PIXELS = 28 * 28 * 1280;
const MAX_ATTACHED = 8;
const READ_TYPES = new Set(["image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp"]);
const KEEP_BYTES = 1.5 * 1024 * 1024; // a file this small is sent as it is

function readAsDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error("the file could not be read"));
    reader.readAsDataURL(blob);
  });
}

/** A data: URL of the picture in ``file``, scaled down to MAX_PIXELS when larger (or heavier). */
export async function imageDataUrl(file) {
  if (!READ_TYPES.has(file.type)) {
    throw new Error(`${file.name || "the file"} is not a PNG, JPEG, WebP, GIF or BMP image`);
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    throw new Error(`${file.name || "the file"} is not a readable image`);
  }
  const pixels = bitmap.width * bitmap.height;
  if (pixels <= MAX_PIXELS && file.size <= KEEP_BYTES) {
    bitmap.close();
    return { url: await readAsDataUrl(file), width: bitmap.width, height: bitmap.height };
  }
  const scale = Math.min(1, Math.sqrt(MAX_PIXELS / pixels));
  const width = Math.max(1, Math.floor(bitmap.width * scale));
  const height = Math.max(1, Math.floor(bitmap.height * scale));
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d").drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  return { url: canvas.toDataURL("image/jpeg", 0.92), width, height };
}

/** How many image tokens the server's model reads this picture as (its error when it reads none). */
export async function imageTokens(url, model, askKey) {
  const body = { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url } }] }] };
  if (model) body.model = model;
  const response = await apiFetch("/tokenize", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  }, askKey);
  const counted = await response.json();
  return Array.isArray(counted.image_tokens) ? counted.image_tokens[0] : null;
}

/** The tray of attachments above the prompt. */
export class Attachments {
  constructor(tray, onError) {
    this.tray = tray;
    this.onError = onError;
    this.items = []; // {url, width, height, tokens}
  }

  async add(files, model, askKey) {
    for (const file of files) {
      if (this.items.length >= MAX_ATTACHED) {
        this.onError(`at most ${MAX_ATTACHED} images per message`);
        return;
      }
      try {
        const image = await imageDataUrl(file);
        image.tokens = await imageTokens(image.url, model, askKey);
        this.items.push(image);
      } catch (err) {
        this.onError(err && err.message ? err.message : String(err));
      }
      this.render();
    }
  }

  take() {
    const taken = this.items.map((image) => ({ url: image.url, tokens: image.tokens }));
    this.items = [];
    this.render();
    return taken;
  }

  render() {
    this.tray.hidden = !this.items.length;
    this.tray.replaceChildren(...this.items.map((image, i) => {
      const figure = document.createElement("figure");
      figure.className = "attachment";
      const img = document.createElement("img");
      img.src = image.url;
      img.alt = `attached image ${i + 1}`;
      const caption = document.createElement("figcaption");
      caption.className = "image-tokens";
      caption.textContent = Number.isInteger(image.tokens) ? `${image.tokens} image tokens` : "";
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "small-button remove-image";
      remove.title = "Remove this image";
      remove.textContent = "×";
      remove.addEventListener("click", () => {
        this.items.splice(i, 1);
        this.render();
      });
      figure.append(img, caption, remove);
      return figure;
    }));
  }
}

/** Image files among a paste's or a drop's items. */
export function imageFiles(dataTransfer) {
  if (!dataTransfer) return [];
  return [...dataTransfer.files].filter((file) => file.type.startsWith("image/"));
}
