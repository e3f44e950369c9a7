// The page of seq2seq-serve: translate with an alignment heatmap (Bahdanau et al., Fig. 3)
// and caption with each word's attention over the image (Xu et al., Fig. 2-3). Plain DOM and
// canvas, nothing loaded from the network; server text is only ever set as textContent.
"use strict";

const $ = (id) => document.getElementById(id);

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showError(id, message) {
  const node = $(id);
  node.textContent = message || "";
  node.hidden = !message;
}

// The server's errors are {"error": ..., "limit": ...}; say both.
async function postJSON(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) {
    const limit = body.limit ? ` (${body.limit})` : "";
    throw new Error(`${response.status}: ${body.error}${limit}`);
  }
  return body;
}

// --- translation ---------------------------------------------------------------------------
const CELL = 22;

// Target rows × source columns, white = all attention (as in Bahdanau et al.'s figure).
function drawAlignment(alignment) {
  const { source_tokens: source, target_tokens: target, weights } = alignment;
  const canvas = element("canvas", "heatmap");
  const probe = canvas.getContext("2d");
  probe.font = "12px system-ui, sans-serif";
  const widest = (words) => Math.max(0, ...words.map((w) => probe.measureText(w).width));
  const left = Math.ceil(widest(target)) + 8;
  const top = Math.ceil(widest(source)) + 8;
  canvas.width = left + CELL * source.length + 2;
  canvas.height = top + CELL * target.length + 2;
  const ctx = canvas.getContext("2d");
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#1d1d1f";
  ctx.textBaseline = "middle";
  target.forEach((word, i) => {
    ctx.textAlign = "right";
    ctx.fillText(word, left - 4, top + CELL * i + CELL / 2);
  });
  source.forEach((word, j) => {
    ctx.save();
    ctx.translate(left + CELL * j + CELL / 2, top - 4);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "left";
    ctx.fillText(word, 0, 0);
    ctx.restore();
  });
  weights.forEach((row, i) => {
    row.forEach((w, j) => {
      const level = Math.round(255 * Math.min(1, Math.max(0, w)));
      ctx.fillStyle = `rgb(${level},${level},${level})`;
      ctx.fillRect(left + CELL * j, top + CELL * i, CELL, CELL);
    });
  });
  canvas.title = "alignment: target words (rows) over source words (columns)";
  return canvas;
}

async function translate(event) {
  event.preventDefault();
  const texts = $("source").value.split("\n").map((s) => s.trim()).filter((s) => s);
  if (!texts.length) return;
  showError("translate-error", "");
  $("translate-button").disabled = true;
  try {
    const body = await postJSON("/translate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ texts, alignment: true }),
    });
    const out = $("translations");
    out.replaceChildren();
    body.translations.forEach((hypotheses, k) => {
      const best = hypotheses[0];
      const block = element("div", "translation");
      block.append(element("div", "hint", texts[k]));
      const line = element("div");
      line.append(element("span", "text", best.text));
      line.append(element("span", "logprob", `logprob ${best.logprob.toFixed(2)}`));
      block.append(line);
      if (best.alignment) block.append(drawAlignment(best.alignment));
      out.append(block);
    });
  } catch (err) {
    showError("translate-error", err.message);
  } finally {
    $("translate-button").disabled = false;
  }
}

// --- captioning ----------------------------------------------------------------------------
const SHOWN = 256; // the model's square input picture is drawn at this size

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = reject;
    image.src = url;
  });
}

// The picture, darkened where the word did not look: each map is scaled to its own maximum
// (attention over a grid is mostly near 1/cells) and smoothed by the canvas's bilinear
// upscaling of the small grid, as in the paper's figures.
function drawAttention(canvas, picture, row, grid) {
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(picture, 0, 0, canvas.width, canvas.height);
  if (!row) return;
  const [height, width] = grid;
  const mask = document.createElement("canvas");
  mask.width = width;
  mask.height = height;
  const mctx = mask.getContext("2d");
  const pixels = mctx.createImageData(width, height);
  const peak = Math.max(1e-12, ...row);
  row.forEach((w, i) => {
    pixels.data[4 * i + 3] = Math.round(220 * (1 - Math.min(1, w / peak)));
  });
  mctx.putImageData(pixels, 0, 0);
  ctx.drawImage(mask, 0, 0, canvas.width, canvas.height);
}

function renderImage(result, picture) {
  const block = element("div", "captioned");
  const canvas = element("canvas");
  canvas.width = SHOWN;
  canvas.height = SHOWN;
  drawAttention(canvas, picture, null, null);
  block.append(canvas);
  const side = element("div");
  side.append(element("div", "hint", result.name));
  const list = element("ol", "caption-list");
  const words = [];
  result.captions.forEach((caption) => {
    const item = element("li");
    const rows = caption.attention || [];
    const tokens = caption.words.concat(rows.length > caption.words.length ? ["</s>"] : []);
    tokens.forEach((word, t) => {
      const span = element("span", "word", word);
      const select = () => {
        words.forEach((w) => w.classList.remove("active"));
        span.classList.add("active");
        drawAttention(canvas, picture, rows[t], result.grid);
      };
      if (rows[t] && result.grid) {
        span.addEventListener("mouseenter", select);
        span.addEventListener("click", select);
      }
      words.push(span);
      item.append(span, " ");
    });
    item.append(element("span", "logprob", `logprob ${caption.logprob.toFixed(2)}`));
    list.append(item);
  });
  side.append(list);
  side.append(
    element("div", "hint", result.grid ? "hover or click a word to see where it looked"
      : "this model has no attention (NIC)"),
  );
  block.append(side);
  return block;
}

async function caption(file) {
  if (!file) return;
  showError("caption-error", "");
  const form = new FormData();
  form.append("images", file, file.name);
  form.append("nbest", "3");
  form.append("attention", "true");
  try {
    const body = await postJSON("/caption", { method: "POST", body: form });
    const out = $("captions");
    out.replaceChildren();
    for (const result of body.images) {
      const picture = await loadImage(result.input_image);
      out.append(renderImage(result, picture));
    }
  } catch (err) {
    showError("caption-error", err.message);
  }
}

function setUpDropZone() {
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    caption(event.dataTransfer.files[0]);
  });
  $("image-input").addEventListener("change", (event) => caption(event.target.files[0]));
}

// --- start ---------------------------------------------------------------------------------
async function start() {
  try {
    const health = await postJSON("/health", {});
    const parts = [];
    if (health.tasks.includes("translation")) {
      $("translate-panel").hidden = false;
      parts.push(`translation (beam ${health.beam.translation})`);
    }
    if (health.tasks.includes("captioning")) {
      $("caption-panel").hidden = false;
      parts.push(`captioning (beam ${health.beam.captioning})`);
    }
    $("status").textContent = `serving ${parts.join(" and ")}`;
  } catch (err) {
    $("status").textContent = `server unavailable: ${err.message}`;
  }
  $("translate-form").addEventListener("submit", translate);
  setUpDropZone();
}

start();
