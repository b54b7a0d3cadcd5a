// What the page knows of a served model, from its /v1/models entry alone.
//
// The entry may carry optional metadata (``thinking``, ``sampling``, ``params_total``); without it the
// page falls back to Qwen's published presets, chosen by family, as the server itself does.

// Qwen's recommended sampling presets (the same numbers as qwenkit.engine.params).
const PRESETS = {
  qwen3_thinking: { temperature: 0.6, top_p: 0.95, top_k: 20 },
  qwen3_non_thinking: { temperature: 0.7, top_p: 0.8, top_k: 20 },
  default: { temperature: 0.7, top_p: 0.8, top_k: 20 },
};

const THINKING_MODES = new Set(["none", "hybrid", "thinking-only"]);

function isQwen3(card) {
  return typeof card.family === "string" && card.family.toLowerCase().startsWith("qwen3");
}

/** "none", "hybrid" (a switch) or "thinking-only". */
export function thinkingMode(card) {
  if (!card) return "none";
  if (THINKING_MODES.has(card.thinking)) return card.thinking;
  return isQwen3(card) ? "hybrid" : "none";
}

function pickSampling(values) {
  if (!values || typeof values !== "object") return null;
  const out = {};
  for (const key of ["temperature", "top_p", "top_k"]) {
    if (typeof values[key] === "number") out[key] = values[key];
  }
  return Object.keys(out).length === 3 ? out : null;
}

/** The model's recommended temperature/top_p/top_k for this thinking state. */
export function recommendedSampling(card, thinking) {
  const mode = thinking ? "thinking" : "non_thinking";
  const given = card && card.sampling;
  const fromCard = given && (pickSampling(given[mode]) || pickSampling(given.default));
  if (fromCard) return fromCard;
  if (card && isQwen3(card)) return thinking ? PRESETS.qwen3_thinking : PRESETS.qwen3_non_thinking;
  return PRESETS.default;
}

function formatParams(n) {
  if (n >= 1e9) return `${+(n / 1e9).toFixed(1)}B parameters`;
  return `${Math.round(n / 1e6)}M parameters`;
}

/** "0.6B parameters" from the card, else read off the model's name (said so), else unknown. */
export function sizeLabel(card) {
  if (typeof card.params_total === "number" && card.params_total > 0) return formatParams(card.params_total);
  const m = /(?:^|[-_./\s])(\d+(?:\.\d+)?)([bm])(?=$|[-_./\s])/i.exec(card.id || "");
  if (m) return `${m[1]}${m[2].toUpperCase()} (from the name)`;
  return "unknown";
}

/** [label, value] rows for the model panel. */
export function modelFacts(card) {
  const ctx = card.context_length;
  const rows = [
    ["Model", card.id],
    ["Family", card.family || "unknown"],
    ["Size", sizeLabel(card)],
    ["Quantization", card.quant || (card.backend === "transformers" ? "none (full weights)" : "unknown")],
    ["Context", Number.isInteger(ctx) ? `${ctx.toLocaleString("en")} tokens` : "?"],
    ["Backend", card.backend || "?"],
    ["Thinking", thinkingMode(card)],
  ];
  if (card.display_name) rows.splice(1, 0, ["Name", card.display_name]);
  return rows;
}
