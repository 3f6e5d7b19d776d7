// vidcolor studio page: plain JavaScript, no libraries. Every edit is saved at once (PUT .../hints), then the
// colorized preview is fetched again; the server keeps nothing the files do not.
"use strict";

const DEFAULT_COLOURS = ["#c83c28", "#e0a080", "#c89070", "#7a4a2a", "#f0d070", "#e08030",
                         "#3c8c3c", "#2a5a2a", "#9ab060", "#4a7ac8", "#87b8e0", "#2a3a78",
                         "#8050a0", "#e8e0d0", "#8a8a8a", "#303030"];
const RECENT_COLOURS = 12;

const $ = (id) => document.getElementById(id);
const state = {
  project: null, index: 0, points: [], kind: null, selected: -1, keyframes: [], shots: [0],
  recent: [], previewVersion: 0, editStarted: 0, drag: null,
};

// --- talking to the server ------------------------------------------------------------------------------------
async function api(method, url, body, contentType) {
  const options = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = contentType || "application/json";
    options.body = contentType ? body : JSON.stringify(body);
  }
  const response = await fetch(url, options);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!response.ok) {
    const message = (data && data.error) || `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return data;
}

function say(text, isError) {
  const message = $("message");
  message.textContent = text || "";
  message.className = isError ? "error" : "";
}

function failed(error) { say(error.message || String(error), true); }

// --- pictures ---------------------------------------------------------------------------------------------------
const picture = (index) => `/api/picture/${index}`;
const isVideo = () => state.project.kind === "video";

async function show(index) {
  index = Math.max(0, Math.min(state.project.count - 1, index));
  state.index = index;
  state.selected = -1;
  $("gray").src = `${picture(index)}/gray.jpg`;
  if (isVideo()) {
    $("scrubber").value = index;
    $("frameNumber").value = index;
  }
  markStrip();
  try {
    const hints = await api("GET", `${picture(index)}/hints`);
    if (index !== state.index) return;
    state.points = hints.points;
    state.kind = hints.kind;
    say("");
  } catch (error) {
    state.points = [];
    state.kind = "broken";
    failed(error);
  }
  drawPoints();
  updateControls();
  refreshPreview();
}

function refreshPreview() {
  state.previewVersion += 1;
  $("colour").src = `${picture(state.index)}/colour.jpg?v=${state.previewVersion}`;
}

function previewLoaded() {
  const colour = $("colour");
  colour.dataset.version = String(state.previewVersion);
  colour.dataset.index = String(state.index);
  if (state.editStarted) {
    $("previewTime").textContent = `(updated in ${Math.round(performance.now() - state.editStarted)} ms)`;
    state.editStarted = 0;
  }
}

// The network's current colour at a pixel: read from the colorized preview (same origin, so readable).
function colourAt(x, y) {
  const image = $("colour");
  if (!image.complete || !image.naturalWidth || image.dataset.index !== String(state.index)) return null;
  const canvas = document.createElement("canvas");
  canvas.width = 1;
  canvas.height = 1;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(image, x, y, 1, 1, 0, 0, 1, 1);
  const [r, g, b] = context.getImageData(0, 0, 1, 1).data;
  return "#" + [r, g, b].map((v) => v.toString(16).padStart(2, "0")).join("");
}

// --- points -------------------------------------------------------------------------------------------------------
function pictureSize() { return { width: state.project.width || $("gray").naturalWidth,
                                  height: state.project.height || $("gray").naturalHeight }; }

function toPicture(event) {
  const rect = $("gray").getBoundingClientRect();
  const { width, height } = pictureSize();
  const x = Math.floor((event.clientX - rect.left) / rect.width * width);
  const y = Math.floor((event.clientY - rect.top) / rect.height * height);
  return { x: Math.max(0, Math.min(width - 1, x)), y: Math.max(0, Math.min(height - 1, y)) };
}

function drawPoints() {
  const marks = $("marks");
  marks.textContent = "";
  const { width, height } = pictureSize();
  state.points.forEach((point, i) => {
    const mark = document.createElement("div");
    mark.className = "point" + (i === state.selected ? " selected" : "");
    mark.style.left = `${(point.x + 0.5) / width * 100}%`;
    mark.style.top = `${(point.y + 0.5) / height * 100}%`;
    mark.style.background = point.color;
    mark.dataset.index = String(i);
    mark.dataset.color = point.color;
    mark.title = `${point.color} at (${point.x}, ${point.y})`;
    mark.addEventListener("pointerdown", (event) => startDrag(event, i));
    marks.appendChild(mark);
  });
  const point = state.points[state.selected];
  $("pointEditor").hidden = !point;
  $("noPoint").hidden = !!point;
  if (point) {
    $("pointColour").value = point.color;
    $("pointRadius").value = point.radius;
  }
}

async function save() {
  state.editStarted = performance.now();
  try {
    const saved = await api("PUT", `${picture(state.index)}/hints`, { points: state.points });
    state.kind = saved.kind;
    say(`saved ${state.points.length} point${state.points.length === 1 ? "" : "s"}`);
    await loadKeyframes();
    updateControls();
    refreshPreview();
  } catch (error) {
    failed(error);
  }
}

function addPoint(event) {
  if (state.drag) return;
  if (state.kind === "image") {
    say("this frame's colour comes from a colour image; remove it to place points", true);
    return;
  }
  const { x, y } = toPicture(event);
  const color = colourAt(x, y) || "#808080";
  state.points.push({ x, y, color, radius: defaultRadius() });
  state.selected = state.points.length - 1;
  drawPoints();
  save();
  // The picker opens on the network's colour there (the palette beside it needs no picker at all).
  try { $("pointColour").showPicker(); } catch (e) { /* no picker here (headless, an older browser) */ }
}

function defaultRadius() {
  const { width, height } = pictureSize();
  return Math.max(2, Math.round(Math.min(width, height) / 100));
}

function startDrag(event, i) {
  event.preventDefault();
  event.stopPropagation();
  state.selected = i;
  state.drag = { i, moved: false, id: event.pointerId };
  event.target.setPointerCapture(event.pointerId);
  drawPoints();
}

function moveDrag(event) {
  if (!state.drag || event.pointerId !== state.drag.id) return;
  const { x, y } = toPicture(event);
  const point = state.points[state.drag.i];
  if (point.x === x && point.y === y) return;
  point.x = x;
  point.y = y;
  state.drag.moved = true;
  const mark = $("marks").children[state.drag.i];
  const { width, height } = pictureSize();
  mark.style.left = `${(x + 0.5) / width * 100}%`;
  mark.style.top = `${(y + 0.5) / height * 100}%`;
}

function endDrag(event) {
  if (!state.drag || event.pointerId !== state.drag.id) return;
  const moved = state.drag.moved;
  // The click that ends a drag must not also add a point.
  setTimeout(() => { state.drag = null; }, 0);
  drawPoints();
  if (moved) save();
}

function setColour(color) {
  const point = state.points[state.selected];
  if (!point) { say("select a point first (click on the gray picture)", true); return; }
  point.color = color;
  remember(color);
  drawPoints();
  save();
}

function deleteSelected() {
  if (state.selected < 0) return;
  state.points.splice(state.selected, 1);
  state.selected = -1;
  drawPoints();
  save();
}

// --- palette --------------------------------------------------------------------------------------------------
function remember(color) {
  state.recent = [color, ...state.recent.filter((c) => c !== color)].slice(0, RECENT_COLOURS);
  try { localStorage.setItem("vidcolor-studio-recent", JSON.stringify(state.recent)); } catch (e) { /* private mode */ }
  drawPalette();
}

function drawPalette() {
  const palette = $("palette");
  palette.textContent = "";
  const colours = [...state.recent, ...DEFAULT_COLOURS.filter((c) => !state.recent.includes(c))];
  colours.forEach((color) => {
    const swatch = document.createElement("button");
    swatch.type = "button";
    swatch.className = "swatch";
    swatch.style.background = color;
    swatch.title = color;
    swatch.dataset.color = color;
    swatch.addEventListener("click", () => setColour(color));
    palette.appendChild(swatch);
  });
}

// --- keyframes, shots and the strip ---------------------------------------------------------------------------
async function loadKeyframes() {
  const data = await api("GET", "/api/keyframes");
  state.keyframes = data.keyframes;
  drawKeymarks();
  drawStrip();
}

function drawKeymarks() {
  if (!isVideo()) return;
  const marks = $("keymarks");
  marks.textContent = "";
  const last = Math.max(1, state.project.count - 1);
  state.shots.slice(1).forEach((start) => {
    const cut = document.createElement("div");
    cut.className = "cutmark";
    cut.style.left = `${start / last * 100}%`;
    marks.appendChild(cut);
  });
  state.keyframes.forEach((index) => {
    const mark = document.createElement("div");
    mark.className = "keymark";
    mark.style.left = `${index / last * 100}%`;
    mark.title = `keyframe ${index}`;
    mark.addEventListener("click", () => show(index));
    marks.appendChild(mark);
  });
}

function stripItems() {
  if (isVideo()) {
    return state.shots.map((start, i) => ({ index: start, end: (state.shots[i + 1] || state.project.count),
                                             label: `shot ${i + 1}` }));
  }
  if (state.project.kind === "images") {
    return state.project.names.map((name, i) => ({ index: i, end: i + 1, label: name }));
  }
  return [];
}

function drawStrip() {
  const strip = $("strip");
  strip.textContent = "";
  stripItems().forEach((item) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "shot";
    button.dataset.index = String(item.index);
    button.dataset.end = String(item.end);
    button.title = `${item.label} (from ${item.index})`;
    const thumb = document.createElement("img");
    thumb.loading = "lazy";  // a folder of a thousand scans: only the visible thumbnails are asked for
    thumb.src = `${picture(item.index)}/gray.jpg?width=160`;
    thumb.alt = item.label;
    button.appendChild(thumb);
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = item.label;
    button.appendChild(label);
    const count = state.keyframes.filter((k) => k >= item.index && k < item.end).length;
    if (count) {
      const badge = document.createElement("span");
      badge.className = "count";
      badge.textContent = String(count);
      badge.title = `${count} keyframe${count === 1 ? "" : "s"}`;
      button.appendChild(badge);
    }
    button.addEventListener("click", () => show(item.index));
    strip.appendChild(button);
  });
  markStrip();
}

function markStrip() {
  for (const button of $("strip").children) {
    const start = Number(button.dataset.index), end = Number(button.dataset.end);
    button.classList.toggle("current", state.index >= start && state.index < end);
  }
}

async function loadShots() {
  try {
    const shots = await api("GET", "/api/shots");
    state.shots = shots.starts;
    if (shots.note) say(shots.note);
    drawKeymarks();
    drawStrip();
    if (!shots.ready) setTimeout(loadShots, 1000);
  } catch (error) { failed(error); }
}

function updateControls() {
  if (!isVideo()) return;
  const isKeyframe = state.keyframes.includes(state.index);
  const button = $("keyframeButton");
  button.textContent = isKeyframe ? "Keyframe \u2713" : "Mark as keyframe";
  button.title = isKeyframe ? "click to remove this keyframe" : "keep this frame's colours as a keyframe";
  button.classList.toggle("on", isKeyframe);
}

async function toggleKeyframe() {
  try {
    if (state.keyframes.includes(state.index)) {
      await removeHints();
      return;
    }
    await api("POST", `${picture(state.index)}/keyframe`);
    await loadKeyframes();
    updateControls();
  } catch (error) { failed(error); }
}

async function removeHints() {
  if (state.points.length && !confirm(`Remove frame ${state.index}'s keyframe and its ${state.points.length} points?`)) {
    return;
  }
  try {
    await api("DELETE", `${picture(state.index)}/hints`);
    await loadKeyframes();
    await show(state.index);
  } catch (error) { failed(error); }
}

async function loadKeyframeImage(event) {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file) return;
  try {
    const response = await fetch(`${picture(state.index)}/keyframe-image`, {
      method: "PUT", credentials: "same-origin", body: file,
      headers: { "Content-Type": file.type || "application/octet-stream", "X-File-Name": encodeURIComponent(file.name) },
    });
    if (!response.ok) {
      const data = await response.json().catch(() => null);
      throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
    }
    say(`frame ${state.index}: keyframe from ${file.name}`);
    await loadKeyframes();
    await show(state.index);
  } catch (error) { failed(error); }
}

function jumpKeyframe(direction) {
  const candidates = state.keyframes.filter((k) => direction > 0 ? k > state.index : k < state.index);
  if (!candidates.length) { say("no keyframe that way"); return; }
  show(direction > 0 ? candidates[0] : candidates[candidates.length - 1]);
}

// --- render ---------------------------------------------------------------------------------------------------
function showRender(status) {
  const running = status.state === "running";
  $("renderButton").disabled = running;
  $("cancelButton").hidden = !running;
  const progress = $("renderProgress");
  progress.hidden = status.state === "idle";
  progress.max = Math.max(1, status.total);
  progress.value = status.done;
  const text = {
    idle: "", running: `rendering ${status.done} / ${status.total}`, cancelled: "render cancelled",
    done: `done: ${status.output}`, failed: `render failed: ${status.error}`,
  }[status.state];
  const label = $("renderStatus");
  label.textContent = text;
  label.title = text;
  label.dataset.state = status.state;
  if (status.state === "failed") say(status.error, true);
  if (running) setTimeout(pollRender, 500);
}

async function pollRender() {
  try { showRender(await api("GET", "/api/render")); } catch (error) { failed(error); }
}

async function startRender() {
  try { showRender(await api("POST", "/api/render")); } catch (error) { failed(error); }
}

async function cancelRender() {
  try { await api("DELETE", "/api/render"); } catch (error) { failed(error); }
}

// --- start --------------------------------------------------------------------------------------------------------
async function start() {
  try { state.recent = JSON.parse(localStorage.getItem("vidcolor-studio-recent") || "[]"); } catch (e) { state.recent = []; }
  drawPalette();
  try {
    state.project = await api("GET", "/api/project");
  } catch (error) { failed(error); return; }
  const project = state.project;
  $("name").textContent = `${project.name} \u2192 ${project.output.split(/[\\/]/).pop()}`;
  $("name").title = `output: ${project.output}; hints saved in ${project.folder}`;
  document.title = `${project.name} \u2014 vidcolor studio`;
  if (isVideo()) {
    $("timeline").hidden = false;
    $("scrubber").max = project.count - 1;
    $("frameNumber").max = project.count - 1;
    $("frameCount").textContent = String(project.count - 1);
    loadShots();
  }
  $("gray").addEventListener("click", addPoint);
  $("gray").addEventListener("load", drawPoints);
  $("colour").addEventListener("load", previewLoaded);
  $("colour").addEventListener("error", () => say("the preview could not be made (see the studio's terminal)", true));
  document.addEventListener("pointermove", moveDrag);
  document.addEventListener("pointerup", endDrag);
  $("pointColour").addEventListener("change", (event) => setColour(event.target.value));
  $("pointRadius").addEventListener("change", (event) => {
    const point = state.points[state.selected];
    const radius = Number(event.target.value);
    if (point && radius > 0) { point.radius = radius; save(); }
  });
  $("deletePoint").addEventListener("click", deleteSelected);
  let scrubTimer = null;
  $("scrubber").addEventListener("input", (event) => {
    clearTimeout(scrubTimer);
    $("frameNumber").value = event.target.value;
    scrubTimer = setTimeout(() => show(Number(event.target.value)), 120);
  });
  $("frameNumber").addEventListener("change", (event) => {
    const index = Number(event.target.value);
    if (Number.isInteger(index)) show(index);
  });
  $("previousKeyframe").addEventListener("click", () => jumpKeyframe(-1));
  $("nextKeyframe").addEventListener("click", () => jumpKeyframe(1));
  $("keyframeButton").addEventListener("click", toggleKeyframe);
  $("keyframeImage").addEventListener("change", loadKeyframeImage);
  $("renderButton").addEventListener("click", startRender);
  $("cancelButton").addEventListener("click", cancelRender);
  document.addEventListener("keydown", (event) => {
    if (event.target.tagName === "INPUT") return;
    if (event.key === "Delete" || event.key === "Backspace") deleteSelected();
    else if (event.key === "ArrowRight") show(state.index + 1);
    else if (event.key === "ArrowLeft") show(state.index - 1);
  });
  await loadKeyframes();
  await show(0);
  pollRender();
  document.body.dataset.ready = "true";
}

start();
