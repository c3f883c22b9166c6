"use strict";
// steadyswap's page: inputs, people map, options, a preview that follows the slider, and the run queue.
// The setup (inputs, people map, options, output, preview mode and frame) is kept in local storage and in
// the address (#setup=...), so a reload keeps it and the address can be shared.

const $ = (selector, root = document) => root.querySelector(selector);
const SETUP_KEY = "steadyswap.setup";
const state = {
  schema: null, sources: [], target: null, people: null, options: {},
  frame: 0, mode: "side", mask: false, client: Math.random().toString(36).slice(2), seq: 0,
  previewBusy: false, previewWanted: false, jobs: new Map(), restoring: false, toastOwner: null,
};

// ---------- errors: beside what caused them, and in a toast that stays in view ----------
// The user's own file names replace the random names uploads are stored under.
function friendly(message) {
  let text = message;
  for (const file of [...state.sources, ...(state.target ? [state.target] : [])]) {
    if (file.name === baseName(file.path)) continue;
    text = text.split(file.path).join(file.name).split(baseName(file.path)).join(file.name);
  }
  return text;
}

function showError(message, place) {
  const text = friendly(message);
  if (place) {
    place.textContent = text;
    place.hidden = false;
    place.closest("details")?.setAttribute("open", "");
  }
  const option = place?.closest(".option");  // the toast names the option in words too
  $("#toast-text").textContent = option ? `${$("label span", option).textContent}: ${text}` : text;
  $("#toast").hidden = false;
  state.toastOwner = place || null;
}

function clearError(place) {
  place.hidden = true;
  place.textContent = "";
  if (state.toastOwner === place) $("#toast").hidden = true;
}

// Where an error from the API belongs: the option it names, else ``fallback``.
function placeOf(error, fallback) {
  const field = error.body?.field;
  return (field && $(`.option[data-field="${field}"] .inline-error`)) || fallback;
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  if (!response.ok) {
    let body = {};
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    const error = new Error(body.error || `${response.status} ${response.statusText}`);
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return response;
}
const postJSON = (path, body) => api(path, {
  method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
});
const baseName = (path) => path.split(/[\\/]/).pop();
const element = (tag, attributes = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "text") node.textContent = value; else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
};

// ---------- the setup: saved on every change, restored on load ----------
function setup() {
  const file = (f) => ({ path: f.path, name: f.name });
  return {
    sources: state.sources.map(file), target: state.target && file(state.target),
    people: state.people && state.people.map(({ id, frame, box, seen, source }) => ({ id, frame, box, seen, source })),
    options: state.options, output: $("#output").value, mode: state.mode, mask: state.mask, frame: state.frame,
  };
}

function saveSetup() {
  if (state.restoring) return;
  const text = JSON.stringify(setup());
  try { localStorage.setItem(SETUP_KEY, text); } catch (_) { /* storage full or off: the address still has it */ }
  history.replaceState(null, "", `${location.pathname}${location.search}#setup=${encodeURIComponent(text)}`);
}

function savedSetup() {
  const fromAddress = new URLSearchParams(location.hash.slice(1)).get("setup");
  for (const text of [fromAddress, localStorage.getItem(SETUP_KEY)]) {
    try { if (text) return JSON.parse(text); } catch (_) { /* not ours: try the next */ }
  }
  return null;
}

async function restoreSetup() {
  const saved = savedSetup();
  if (!saved) return;
  state.restoring = true;
  const gone = [];
  for (const source of saved.sources || []) {
    try { state.sources.push(await loadInput("source", source.path, source.name)); } catch (_) { gone.push(source.name); }
  }
  if (saved.target) {
    try { state.target = await loadInput("target", saved.target.path, saved.target.name); } catch (_) { gone.push(saved.target.name); }
  }
  const known = new Set(state.schema.options.map((o) => o.field));
  state.options = Object.fromEntries(Object.entries(saved.options || {}).filter(([field]) => known.has(field)));
  const paths = new Set(state.sources.map((s) => s.path));
  if (state.target && Array.isArray(saved.people)) {
    state.people = saved.people.map((p) => ({ ...p, source: paths.has(p.source) ? p.source : null }));
  }
  state.frame = Math.max(0, Math.min(Number(saved.frame) || 0, (state.target?.info.frames || 1) - 1));
  $("#output").value = saved.output || "";
  setMode(saved.mode || "side");
  state.mask = saved.mask === true;
  $("#show-mask").checked = state.mask;
  for (const option of state.schema.options) setControl(option, state.options[option.field] ?? option.default);
  refreshPixelBoosts();
  state.restoring = false;
  renderInputs();
  checkOptions();
  requestPreview();
  saveSetup();
  if (gone.length) showError(`no longer available, left out: ${gone.join(", ")}`, $("#source-error"));
}

// ---------- inputs ----------
async function loadInput(role, path, name) {
  const info = await (await api(`/api/media?path=${encodeURIComponent(path)}`)).json();
  const file = { path: info.path, name: name || baseName(info.path), info };
  if (role === "source" && info.kind !== "image") throw new Error(`${file.name} is a video; source faces come from photos`);
  return file;
}

async function addInput(role, path, name) {
  const place = $(`#${role}-error`);
  try {
    const file = await loadInput(role, path, name);
    if (role === "source") {
      if (!state.sources.some((s) => s.path === file.path)) state.sources.push(file);
    } else {
      state.target = file;
      state.people = null;
      state.frame = 0;
    }
    clearError(place);
    renderInputs();
    saveSetup();
    requestPreview();
  } catch (error) { showError(error.message, place); }
}

function renderInputs() {
  $("#sources").replaceChildren(...state.sources.map((file, index) => {
    const remove = element("button", { type: "button", "aria-label": `remove ${file.name}`, text: "×" });
    remove.onclick = () => {
      state.sources.splice(index, 1);
      if (state.people) state.people.forEach((p) => { if (p.source === file.path) p.source = null; });
      renderInputs(); saveSetup(); requestPreview();
    };
    return element("li", {}, element("img", { src: thumbUrl(file.path), alt: "" }),
      element("div", { class: "text" }, element("span", { class: "name", title: file.path, text: file.name })), remove);
  }));
  const target = state.target;
  $("#target").replaceChildren(...(target ? [element("li", {},
    element("img", { src: thumbUrl(target.path), alt: "" }),
    element("div", { class: "text" }, element("span", { class: "name", title: target.path, text: target.name }),
      element("span", { class: "meta", text: describeMedia(target.info) })))] : []));
  const slider = $("#frame");
  const frames = target ? target.info.frames : 1;
  slider.max = String(Math.max(frames - 1, 0));
  slider.value = String(state.frame);
  slider.disabled = !target || frames <= 1;
  $("#frame-label").textContent = `frame ${state.frame}`;
  renderOptions();
  renderPeople();
}

const thumbUrl = (path) => `/api/thumb?path=${encodeURIComponent(path)}`;
const describeMedia = (info) => info.kind === "image" ? `photo ${info.width}×${info.height}`
  : `${info.width}×${info.height}, ${info.frames} frames, ${info.fps.toFixed(2)} fps${info.audio ? ", audio" : ""}`;

function upload(role, file) {
  const card = $(`.pick[data-role=${role}]`).closest(".card");
  const box = $(".upload-progress", card);
  const bar = $("progress", box);
  const label = $("span", box);
  const place = $(`#${role}-error`);
  box.hidden = false;
  bar.value = 0;
  label.textContent = `uploading ${file.name}…`;
  const request = new XMLHttpRequest();
  request.open("POST", `/api/upload?name=${encodeURIComponent(file.name)}`);
  request.upload.onprogress = (event) => {
    if (!event.lengthComputable) return;
    bar.value = event.loaded / event.total;
    label.textContent = `${file.name}: ${(event.loaded / 1048576).toFixed(1)} / ${(event.total / 1048576).toFixed(1)} MB`;
  };
  request.onload = () => {
    box.hidden = true;
    let body = {};
    try { body = JSON.parse(request.responseText); } catch (_) { /* not JSON */ }
    if (request.status !== 200) { showError(body.error || `${file.name}: upload failed (${request.status})`, place); return; }
    addInput(role, body.path, body.name);
  };
  request.onerror = () => { box.hidden = true; showError(`${file.name}: the upload was interrupted`, place); };
  request.send(file);
}

// ---------- file browser ----------
let browsingFor = "source";
async function browse(path) {
  try {
    const listing = await (await api(`/api/browse${path ? `?path=${encodeURIComponent(path)}` : ""}`)).json();
    $("#browser-path").textContent = listing.path;
    const rows = listing.roots.filter((root) => root !== listing.path)
      .map((root) => browserRow(`⇱ ${root}/`, () => browse(root)));
    if (listing.parent) rows.push(browserRow("↑ ..", () => browse(listing.parent)));
    for (const entry of listing.entries) {
      rows.push(entry.is_dir
        ? browserRow(`▸ ${entry.name}/`, () => browse(entry.path))
        : browserRow(`${entry.name}  (${(entry.size / 1048576).toFixed(1)} MB)`, () => {
          $("#browser").close();
          addInput(browsingFor, entry.path);
        }));
    }
    $("#browser-list").replaceChildren(...rows);
    if (!$("#browser").open) $("#browser").showModal();
  } catch (error) { showError(error.message, $(`#${browsingFor}-error`)); }
}
function browserRow(label, action) {
  const button = element("button", { type: "button", text: label });
  button.onclick = action;
  return element("li", {}, button);
}

// ---------- options: in groups, words first and the flag beside them, checked as typed ----------
// A "multi" option (a flag of several values, e.g. --face-mask-types) holds a list; ``when`` asks that it
// includes one of the values listed.
function visibleOption(option) {
  if (option.target && state.target && option.target !== state.target.info.kind) return false;
  return option.when.every(([name, values]) => {
    const negate = name.endsWith("!");
    const field = negate ? name.slice(0, -1) : name;
    const hit = [].concat(state.options[field] ?? defaultOf(field)).some((value) => values.includes(String(value)));
    return negate ? !hit : hit;
  });
}

function setControl(option, value, control = $(`#option-${option.field}`)) {
  if (option.kind !== "multi") { control.value = String(value); return; }
  const chosen = [].concat(value).map(String);
  for (const box of control.querySelectorAll("input")) box.checked = chosen.includes(box.value) || box.disabled;
}

function controlValue(option) {
  const control = $(`#option-${option.field}`);
  return option.kind === "multi" ? [...control.querySelectorAll("input:checked")].map((box) => box.value) : control.value;
}

function multiControl(option, id) {
  const group = element("div", { class: "choices", role: "group", "aria-labelledby": `${id}-label` });
  for (const choice of option.choices) {
    const box = element("input", { type: "checkbox", value: choice });
    if (option.fixed.includes(choice)) box.disabled = true;
    group.append(element("label", {}, box, choice));
  }
  return group;
}
const defaultOf = (field) => state.schema.options.find((o) => o.field === field).default;

function buildOptions() {
  const groups = new Map();
  for (const option of state.schema.options) {
    if (!groups.has(option.group)) {
      groups.set(option.group, element("details", { open: "", "data-group": option.group },
        element("summary", {}, option.group, element("span", { class: "changed" }))));
    }
    const id = `option-${option.field}`;
    let control;
    if (option.kind === "multi") {
      control = multiControl(option, id);
    } else if (option.kind === "select") {
      control = element("select", {});
      for (const choice of option.choices) {
        const blank = option.field === "output_video_encoder" ? "from the output's extension" : "the model's own";
        control.append(element("option", { value: choice, text: choice === "" ? blank : choice }));
      }
    } else {
      control = element("input", option.kind === "text" ? { type: "text" }
        : { type: "number", step: option.step ?? 1 });
    }
    control.id = id;
    if (option.kind !== "multi") control.name = option.field;
    control.setAttribute("aria-describedby", `${id}-help ${id}-error`);
    control.onchange = () => {
      state.options[option.field] = controlValue(option);
      if (option.field === "face_swapper_model") refreshPixelBoosts();
      renderOptions();
      saveSetup();
      checkOptions();
      requestPreview();
    };
    if (control.tagName === "INPUT") control.oninput = () => { state.options[option.field] = control.value; checkSoon(); };
    const label = element("label", option.kind === "multi" ? { id: `${id}-label` } : { for: id },
      element("span", { text: option.label }), element("span", { class: "flag", text: option.flag }));
    groups.get(option.group).append(element("div", { class: "option", "data-field": option.field }, label, control,
      element("p", { class: "help", id: `${id}-help`, text: option.help }),
      element("p", { class: "inline-error", id: `${id}-error`, hidden: "" })));
    setControl(option, option.default, control);
  }
  $("#options").replaceChildren(...groups.values());
  renderOptions();
}

function refreshPixelBoosts() {
  const model = state.options.face_swapper_model ?? defaultOf("face_swapper_model");
  const allowed = state.schema.pixel_boosts[model] || [];
  const select = $("#option-face_swapper_pixel_boost");
  for (const option of select.options) option.hidden = option.value !== "" && !allowed.includes(option.value);
  if (select.selectedOptions[0]?.hidden) { select.value = ""; delete state.options.face_swapper_pixel_boost; }
}

function renderOptions() {
  if (!state.schema) return;
  for (const option of state.schema.options) {
    $(`.option[data-field="${option.field}"]`).hidden = !visibleOption(option);
  }
  for (const group of document.querySelectorAll("#options details")) {
    const rows = [...group.querySelectorAll(".option")].filter((row) => !row.hidden);
    group.hidden = !rows.length;
    const changed = rows.filter((row) => String(state.options[row.dataset.field] ?? defaultOf(row.dataset.field))
      !== String(defaultOf(row.dataset.field))).length;
    $(".changed", group).textContent = changed ? `${changed} changed` : "";
  }
}

function chosenOptions() {
  const chosen = {};
  for (const option of state.schema.options) {
    if (visibleOption(option) && option.field in state.options) chosen[option.field] = state.options[option.field];
  }
  return chosen;
}

let checkTimer = null;
function checkSoon() {
  clearTimeout(checkTimer);
  checkTimer = setTimeout(checkOptions, 250);
}

// Each shown option against the CLI's own checks (the server's RunConfig.validate); the message under the field.
async function checkOptions() {
  clearTimeout(checkTimer);
  try {
    const { errors } = await (await postJSON("/api/options/check", { options: chosenOptions() })).json();
    for (const row of document.querySelectorAll("#options .option")) {
      const message = errors[row.dataset.field];
      const place = $(".inline-error", row);
      $(`#option-${row.dataset.field}`).setAttribute("aria-invalid", message ? "true" : "false");
      if (message) { place.textContent = message; place.hidden = false; } else clearError(place);
    }
  } catch (error) { showError(error.message); }
}

// ---------- people ----------
async function findPeople() {
  const place = $("#people-error");
  if (!state.target) { showError("choose a target first", place); return; }
  const button = $("#find-people");
  button.disabled = true;
  button.textContent = "Finding people…";
  try {
    const found = await (await postJSON("/api/people", { target: state.target.path, options: chosenOptions() })).json();
    if (!found.people.length) throw new Error("no face found on the sampled frames of the target");
    const first = state.sources[0]?.path ?? null;
    state.people = found.people.map((person, index) => ({ ...person, source: index === 0 ? first : null }));
    clearError(place);
    renderPeople();
    saveSetup();
    requestPreview();
  } catch (error) { showError(error.message, placeOf(error, place)); }
  finally { button.disabled = false; button.textContent = "Find people"; }
}

function renderPeople() {
  $("#clear-people").hidden = !state.people;
  if (!state.people) { $("#people").replaceChildren(); return; }
  $("#people").replaceChildren(...state.people.map((person) => {
    const select = element("select", { "aria-label": `source photo for person ${person.id}` });
    select.append(element("option", { value: "", text: "leave unchanged" }));
    for (const source of state.sources) select.append(element("option", { value: source.path, text: source.name }));
    select.value = person.source ?? "";
    select.onchange = () => { person.source = select.value || null; saveSetup(); requestPreview(); };
    const face = person.thumbnail || `${thumbUrl(state.target.path)}&frame=${person.frame}&box=${person.box.join(",")}`;
    return element("div", { class: "person", "data-person": person.id },
      element("img", { src: face, alt: `person ${person.id}` }),
      element("div", { class: "meta", text: `person ${person.id} · on ${person.seen} sampled frame(s)` }), select);
  }));
}

const peopleMap = () => state.people
  ? state.people.map((p) => ({ frame: p.frame, box: p.box, source: p.source })) : null;

// ---------- preview ----------
function setMode(mode) {
  state.mode = mode;
  for (const button of document.querySelectorAll("#modes button")) {
    button.classList.toggle("on", button.dataset.mode === mode);
    button.setAttribute("aria-pressed", String(button.dataset.mode === mode));
  }
}

function requestPreview() {
  state.previewWanted = true;
  if (!state.previewBusy) sendPreview();
}

async function sendPreview() {
  const place = $("#preview-error");
  if (!state.target || !state.sources.length) {
    $("#preview").hidden = true;
    $("#preview-empty").hidden = false;
    state.previewWanted = false;
    return;
  }
  state.previewBusy = true;
  state.previewWanted = false;
  const seq = ++state.seq;
  const started = performance.now();
  try {
    const response = await postJSON("/api/preview", {
      sources: state.sources.map((s) => s.path), target: state.target.path, frame: state.frame,
      mode: state.mode, mask: state.mask, options: chosenOptions(), people: peopleMap(), client: state.client, seq,
    });
    if (response.status === 200) {
      const blob = await response.blob();
      const image = $("#preview");
      const old = image.src;
      image.src = URL.createObjectURL(blob);
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      image.hidden = false;
      image.dataset.frame = response.headers.get("X-Frame");
      image.dataset.seq = String(seq);
      $("#preview-empty").hidden = true;
      const faces = Number(response.headers.get("X-Faces"));
      $("#preview-status").textContent = `frame ${response.headers.get("X-Frame")} · ${faces} face(s) swapped · `
        + (state.mask ? "tinted: swapped (the paste mask) · " : "")
        + `${response.headers.get("X-Ms")} ms server, ${Math.round(performance.now() - started)} ms total`;
      clearError(place);
    }
  } catch (error) {
    showError(error.message, placeOf(error, place));
  } finally {
    state.previewBusy = false;
    if (state.previewWanted) sendPreview();
  }
}

// ---------- queue ----------
// Ask before replacing a file: resolves true when the user chose Replace.
function confirmReplace(message) {
  const dialog = $("#overwrite");
  $("#overwrite-text").textContent = friendly(message);
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "replace"), { once: true }));
}

// POST ``body`` to ``path``; on 409 (the output exists) ask, and send again with overwrite when allowed.
async function postAsking(path, body) {
  try {
    return await (await postJSON(path, body)).json();
  } catch (error) {
    if (error.status !== 409 || !(await confirmReplace(error.body.exists))) throw error;
    return (await postJSON(path, { ...body, overwrite: true })).json();
  }
}

async function startRun() {
  const place = $("#run-error");
  if (!state.target || !state.sources.length) { showError("choose a source photo and a target first", place); return; }
  const body = { sources: state.sources.map((s) => s.path), target: state.target.path,
    options: chosenOptions(), people: peopleMap() };
  const output = $("#output").value.trim();
  if (output) body.output = output;
  try {
    const job = await postAsking("/api/jobs", body);
    clearError(place);
    renderJobs([job, ...[...state.jobs.values()].map((card) => card.job).filter((j) => j.id !== job.id)]);
  } catch (error) {
    if (error.status === 409) { clearError(place); return; }  // the user kept the existing file
    showError(error.message, placeOf(error, place));
  }
}

const clock = (seconds) => seconds == null ? "–"
  : `${Math.floor(seconds / 60)}:${String(Math.round(seconds % 60)).padStart(2, "0")}`;

function renderJobs(jobs) {
  $("#queue-empty").hidden = jobs.length > 0;
  for (const job of [...jobs].sort((a, b) => b.id - a.id)) {
    let card = state.jobs.get(job.id);
    if (!card) {
      card = { node: jobNode(job), job: null };
      state.jobs.set(job.id, card);
    }
    updateJob(card, job);
  }
  $("#queue").replaceChildren(...[...state.jobs.values()].sort((a, b) => b.job.id - a.job.id).map((card) => card.node));
}

function jobNode(job) {
  const node = element("li", { class: "job", "data-job": job.id });
  node.innerHTML = `<div class="head"><span class="state"></span><span class="title"></span>
    <button type="button" class="cancel">Cancel</button><button type="button" class="retry">Retry</button></div>
    <progress max="1" value="0" aria-label="frames done"></progress><div class="stats mono"></div>
    <div class="job-error"></div><p class="action-error inline-error" hidden></p>
    <details><summary>Command line</summary><pre class="command"></pre></details><div class="result"></div>`;
  const place = $(".action-error", node);
  $(".cancel", node).onclick = () => postJSON(`/api/jobs/${job.id}/cancel`, {})
    .then(() => clearError(place), (e) => showError(e.message, place));
  $(".retry", node).onclick = () => postAsking(`/api/jobs/${job.id}/retry`, {})
    .then(() => clearError(place), (e) => (e.status === 409 ? clearError(place) : showError(e.message, place)));
  return node;
}

function updateJob(card, job) {
  const node = card.node;
  const previous = card.job;
  card.job = job;
  node.dataset.state = job.state;
  $(".state", node).textContent = job.state;
  $(".title", node).textContent = `#${job.id} ${baseName(job.target)} → ${baseName(job.output)}`;
  $(".title", node).title = job.output;
  $(".cancel", node).hidden = !["queued", "running"].includes(job.state);
  $(".retry", node).hidden = ["queued", "running"].includes(job.state);
  const bar = $("progress", node);
  bar.value = job.total ? job.done / job.total : 0;
  bar.hidden = job.state !== "running";
  $(".stats", node).textContent = job.state === "queued" ? "waiting"
    : `${job.done}${job.total ? ` / ${job.total}` : ""} frames · ${job.fps.toFixed(1)} frames/s · `
      + (job.state === "running" ? `ETA ${clock(job.eta)}` : `${clock(job.seconds)} in all`);
  $(".job-error", node).textContent = job.error ? friendly(job.error) : "";
  $(".command", node).textContent = job.command;
  if (job.state === "done" && (!previous || previous.state !== "done")) $(".result", node).replaceChildren(...resultNodes(job));
  if (job.state !== "done") $(".result", node).replaceChildren();
}

function resultNodes(job) {
  const url = `/api/jobs/${job.id}/output`;
  const media = job.kind === "image"
    ? element("img", { class: "result-image", src: `${url}?t=${Date.now()}`, alt: `output of job ${job.id}` })
    : element("video", { src: `${url}?t=${Date.now()}`, controls: "", preload: "auto", "aria-label": `output of job ${job.id}` });
  const nodes = [media, element("div", { class: "row wrap" },
    element("a", { href: `${url}?download=true`, download: baseName(job.output), class: "button download", text: "Download" }),
    element("span", { class: "hint mono", text: job.output }))];
  if (job.quality) nodes.push(qualityTable(job.quality));
  if (job.provenance) nodes.push(element("div", { class: "row hint provenance", text: `Provenance (steadyswap verify): ${job.provenance}` }));
  if (job.report) {
    nodes.push(element("img", { class: "report", src: `/api/jobs/${job.id}/report.png`, alt: "quality report plot" }));
    nodes.push(element("div", { class: "row hint" }, "Per-frame figures: ",
      element("a", { href: `/api/jobs/${job.id}/report.json`, text: "JSON" }), " · ",
      element("a", { href: `/api/jobs/${job.id}/report.csv`, text: "CSV" })));
  }
  if (job.summary) {
    nodes.push(element("details", {}, element("summary", { text: "Full quality summary" }),
      element("pre", { class: "summary", text: job.summary })));
  }
  return nodes;
}

function qualityTable(quality) {
  const number = (value, digits) => value == null ? "n/a" : Number(value).toFixed(digits);
  const rows = [
    ["tPSNR face, output / target", `${number(quality.tpsnr_face_out, 2)} / ${number(quality.tpsnr_face_tgt, 2)} dB`],
    ["added flicker (face)", `${number(quality.flicker_added_face, 2)} dB`],
    ["TD fidelity (face)", `${number(quality.td_fidelity_face, 2)} dB`],
    ["jitter / IOD, tracked / raw", `${number(quality.jitter, 4)} / ${number(quality.jitter_raw, 4)}`],
  ];
  return element("table", { class: "quality" }, ...rows.map(([label, value]) =>
    element("tr", {}, element("th", { scope: "row", text: label }), element("td", { class: "mono", text: value }))));
}

function listenToQueue() {
  const events = new EventSource("/api/events");
  events.onmessage = (event) => renderJobs(JSON.parse(event.data).jobs);
}

// ---------- start ----------
async function start() {
  $("#toast-close").onclick = () => { $("#toast").hidden = true; };
  try {
    state.schema = await (await api("/api/state")).json();
  } catch (error) { showError(error.message); return; }
  buildOptions();
  for (const pick of document.querySelectorAll(".pick")) {
    const role = pick.dataset.role;
    const field = $(".path", pick);
    const add = () => { if (field.value.trim()) { addInput(role, field.value.trim()); field.value = ""; } };
    $(".add", pick).onclick = add;
    field.onkeydown = (event) => { if (event.key === "Enter") add(); };
    $(".browse", pick).onclick = () => { browsingFor = role; browse(null); };
    $(".upload-button", pick).onclick = () => $(".upload", pick).click();
    $(".upload", pick).onchange = (event) => { if (event.target.files[0]) upload(role, event.target.files[0]); event.target.value = ""; };
  }
  $("#frame").oninput = (event) => {
    state.frame = Number(event.target.value);
    $("#frame-label").textContent = `frame ${state.frame}`;
    requestPreview();
  };
  $("#frame").onchange = saveSetup;
  for (const button of document.querySelectorAll("#modes button")) {
    button.onclick = () => { setMode(button.dataset.mode); saveSetup(); requestPreview(); };
  }
  $("#show-mask").onchange = (event) => { state.mask = event.target.checked; saveSetup(); requestPreview(); };
  $("#find-people").onclick = findPeople;
  $("#clear-people").onclick = () => { state.people = null; renderPeople(); saveSetup(); requestPreview(); };
  $("#reset-options").onclick = () => {
    state.options = {};
    for (const option of state.schema.options) setControl(option, option.default);
    refreshPixelBoosts(); renderOptions(); saveSetup(); checkOptions(); requestPreview();
  };
  $("#output").oninput = saveSetup;
  $("#output").onkeydown = (event) => { if (event.key === "Enter") startRun(); };
  $("#start").onclick = startRun;
  await restoreSetup();
  listenToQueue();
  document.body.dataset.ready = "true";
}

start();
