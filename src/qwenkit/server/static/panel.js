// The right-hand panel: the model's facts, the live figures, thinking, sampling, tools and the key.

import { apiKey, listModels } from "./api.js";
import { askKey } from "./keys.js";
import { modelFacts, recommendedSampling, thinkingMode } from "./model.js";
import * as store from "./store.js";
import { formatMs, formatRate } from "./view.js";

const $ = (id) => document.getElementById(id);

const SETTING_DEFAULTS = {
  model: "", thinking: true, thinkingBudget: "", temperature: "", top_p: "", top_k: "",
  max_tokens: "2048", customSampling: false, tools: "",
};
const SAMPLING_FIELDS = ["temperature", "top_p", "top_k", "max_tokens"];
const THINKING_NOTES = {
  none: "This model does not think: no reasoning is shown.",
  hybrid: "The reasoning streams live in a block above the answer.",
  "thinking-only": "This model always thinks.",
};

function numberOf(text, parse) {
  const value = parse(text);
  return Number.isFinite(value) ? value : undefined;
}

export class Panel {
  constructor(setStatus) {
    this.settings = store.loadSettings(SETTING_DEFAULTS);
    this.models = [];
    this.setStatus = setStatus;
  }

  card() {
    return this.models.find((m) => m.id === $("model-select").value) || this.models[0] || null;
  }

  save() {
    store.saveSettings(this.settings);
  }

  thinkingOn() {
    const mode = thinkingMode(this.card());
    return mode === "thinking-only" || (mode === "hybrid" && this.settings.thinking);
  }

  applyRecommended() {
    const values = recommendedSampling(this.card(), this.thinkingOn());
    for (const key of ["temperature", "top_p", "top_k"]) {
      $(key).value = String(values[key]);
      this.settings[key] = String(values[key]);
    }
    this.settings.customSampling = false;
    this.save();
  }

  showThinking() {
    const mode = thinkingMode(this.card());
    const box = $("thinking");
    box.checked = this.thinkingOn();
    box.disabled = mode !== "hybrid";
    $("thinking-budget").disabled = !this.thinkingOn();
    $("thinking-label").textContent = box.checked ? "on" : "off";
    $("thinking-note").textContent = THINKING_NOTES[mode];
  }

  showModel() {
    const c = this.card();
    const facts = $("model-facts");
    facts.replaceChildren();
    if (!c) return;
    for (const [label, value] of modelFacts(c)) {
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = value;
      facts.append(dt, dd);
    }
    this.showThinking();
    if (!this.settings.customSampling) this.applyRecommended();
  }

  async loadModels() {
    this.setStatus("Loading the model list…");
    try {
      this.models = await listModels(askKey);
    } catch (err) {
      this.setStatus(`Cannot list the models: ${err.message}`, true);
      return;
    }
    const select = $("model-select");
    select.replaceChildren(...this.models.map((m) => {
      const o = document.createElement("option");
      o.value = m.id;
      o.textContent = m.id;
      return o;
    }));
    if (this.models.some((m) => m.id === this.settings.model)) select.value = this.settings.model;
    this.showModel();
    this.showKeyState();
    this.setStatus(this.models.length ? "" : "The server lists no model.", !this.models.length);
  }

  showKeyState() {
    $("key-state").textContent = apiKey.get() ? "a key is set for this tab" : "none set";
  }

  /** The tools array to send, null for none; throws (and says why on the page) on bad JSON. */
  tools() {
    const text = this.settings.tools.trim();
    $("tools-error").textContent = "";
    if (!text) return null;
    try {
      const tools = JSON.parse(text);
      if (!Array.isArray(tools)) throw new Error("the tools must be a JSON array");
      return tools.length ? tools : null;
    } catch (err) {
      $("tools-error").textContent = `Tools: ${err.message}`;
      throw err;
    }
  }

  /** The request fields this panel decides: model, sampling, thinking, tools. */
  requestFields() {
    const c = this.card();
    const s = this.settings;
    const int = (v) => parseInt(v, 10);
    const fields = {
      model: c ? c.id : undefined,
      temperature: numberOf(s.temperature, parseFloat),
      top_p: numberOf(s.top_p, parseFloat),
      top_k: numberOf(s.top_k, int),
      max_tokens: numberOf(s.max_tokens, int),
    };
    if (thinkingMode(c) !== "none") {
      fields.enable_thinking = this.thinkingOn();
      const budget = numberOf(s.thinkingBudget, int);
      if (this.thinkingOn() && budget !== undefined) fields.thinking_budget = budget;
    }
    const tools = this.tools();
    if (tools) fields.tools = tools;
    return fields;
  }

  showFigures(stats) {
    const s = stats || {};
    $("fig-speed").textContent = formatRate(s.decode_tps) + (s.estimated && s.decode_tps ? " (est.)" : "");
    $("fig-ttft").textContent = formatMs(s.ttft_ms);
    $("fig-tokens").textContent = s.total_tokens !== undefined
      ? `${s.prompt_tokens} prompt + ${s.completion_tokens} answer = ${s.total_tokens}`
      : s.completion_tokens !== undefined ? `${s.completion_tokens} answer (so far)` : "–";
    const c = this.card();
    const share = c && c.context_length ? ((100 * s.total_tokens) / c.context_length).toFixed(1) : null;
    $("fig-context").textContent = s.total_tokens !== undefined && share !== null
      ? `${s.total_tokens} of ${c.context_length} (${share}%)`
      : "–";
  }

  bind() {
    for (const key of SAMPLING_FIELDS) {
      $(key).value = this.settings[key];
      $(key).addEventListener("input", () => {
        this.settings[key] = $(key).value;
        if (key !== "max_tokens") this.settings.customSampling = true;
        this.save();
      });
    }
    $("thinking-budget").value = this.settings.thinkingBudget;
    $("thinking-budget").addEventListener("input", () => {
      this.settings.thinkingBudget = $("thinking-budget").value;
      this.save();
    });
    $("thinking").addEventListener("change", () => {
      this.settings.thinking = $("thinking").checked;
      this.save();
      this.showThinking();
      if (!this.settings.customSampling) this.applyRecommended();
    });
    $("tools").value = this.settings.tools;
    $("tools").addEventListener("input", () => {
      this.settings.tools = $("tools").value;
      this.save();
    });
    $("reset-sampling").addEventListener("click", () => this.applyRecommended());
    $("model-select").addEventListener("change", () => {
      this.settings.model = $("model-select").value;
      this.save();
      this.showModel();
    });
    $("set-key").addEventListener("click", async () => {
      const key = await askKey("");
      if (key) apiKey.set(key);
      this.showKeyState();
      if (!this.models.length) this.loadModels();
    });
    $("forget-key").addEventListener("click", () => {
      apiKey.set("");
      this.showKeyState();
    });
  }
}
