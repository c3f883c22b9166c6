"use strict";
// steadyswap's page: inputs, people map, options, a preview that follows the slider, and the run queue.

const $ = (selector, root = document) => root.querySelector(selector);
const state = {
  schema: null, sources: [], target: null, people: null, options: {},
  frame: 0, mode: "side", client: Math.random().toString(36).slice(2), seq: 0,
  previewBusy: false, previewWanted: false, jobs: new Map(),
};

function showError(message) {
  $("#error-text").textContent = message;
  $("#error").hidden = false;
}
function clearError() { $("#error").hidden = true; }

async function api(path, options = {}) {
  const response = await fetch(path, options);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
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

// ---------- inputs ----------
async function addInput(role, path, name) {
  try {
    const info = await (await api(`/api/media?path=${encodeURIComponent(path)}`)).json();
    const file = { path: info.path, name: name || baseName(info.path), info };
    if (role === "source") {
      if (info.kind !== "image") throw new Error(`${file.name} is a video; source faces come from photos`);
      if (!state.sources.some((s) => s.path === file.path)) state.sources.push(file);
    } else {
      state.target = file;
      state.people = null;
      state.frame = 0;
    }
    clearError();
    renderInputs();
    requestPreview();
  } catch (error) { showError(error.message); }
}

function renderInputs() {
  const list = $("#sources");
  list.replaceChildren(...state.sources.map((file, index) => {
    const remove = element("button", { title: "remove", text: "×" });
    remove.onclick = () => {
      state.sources.splice(index, 1);
      if (state.people) state.people.forEach((p) => { if (p.source === file.path) p.source = null; });
      renderInputs(); renderPeople(); requestPreview();
    };
    return element("li", {}, element("img", { src: thumbUrl(file.path), alt: "" }),
      element("span", { class: "name", title: file.path, text: file.name }), remove);
  }));
  const target = state.target;
  $("#target").replaceChildren(...(target ? [element("li", {},
    element("img", { src: thumbUrl(target.path), alt: "" }),
    element("span", { class: "name", title: target.path, text: target.name }),
    element("span", { class: "meta", text: describeMedia(target.info) }))] : []));
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
  const box = $("#upload-progress");
  const bar = $("progress", box);
  const label = $("span", box);
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
    if (request.status !== 200) { showError(body.error || `upload failed (${request.status})`); return; }
    addInput(role, body.path, body.name);
  };
  request.onerror = () => { box.hidden = true; showError("the upload was interrupted"); };
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
  } catch (error) { showError(error.message); }
}
function browserRow(label, action) {
  const button = element("button", { type: "button", text: label });
  button.onclick = action;
  return element("li", {}, button);
}

// ---------- options ----------
function visibleOption(option) {
  if (option.target && state.target && option.target !== state.target.info.kind) return false;
  return option.when.every(([name, values]) => {
    const negate = name.endsWith("!");
    const field = negate ? name.slice(0, -1) : name;
    const value = String(state.options[field] ?? defaultOf(field));
    return negate ? !values.includes(value) : values.includes(value);
  });
}
const defaultOf = (field) => state.schema.options.find((o) => o.field === field).default;

function buildOptions() {
  const groups = new Map();
  for (const option of state.schema.options) {
    if (!groups.has(option.group)) groups.set(option.group, element("fieldset", {}, element("legend", { text: option.group })));
    let control;
    if (option.kind === "select") {
      control = element("select", {});
      for (const choice of option.choices) {
        control.append(element("option", { value: choice, text: choice === "" ? "(model's own)" : choice }));
      }
    } else {
      control = element("input", option.kind === "text" ? { type: "text" }
        : { type: "number", step: option.step ?? 1 });
    }
    control.id = `option-${option.field}`;
    control.name = option.field;
    control.value = String(option.default);
    control.onchange = () => {
      state.options[option.field] = control.value;
      if (option.field === "face_swapper_model") refreshPixelBoosts();
      renderOptions();
      requestPreview();
    };
    const label = element("label", { for: control.id, title: option.help, text: option.flag });
    groups.get(option.group).append(element("div", { class: "option", "data-field": option.field }, label, control));
  }
  $("#options").replaceChildren(...groups.values());
  renderOptions();
}

function refreshPixelBoosts() {
  const model = state.options.face_swapper_model;
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
  for (const fieldset of document.querySelectorAll("#options fieldset")) {
    fieldset.hidden = ![...fieldset.querySelectorAll(".option")].some((row) => !row.hidden);
  }
}

function chosenOptions() {
  const chosen = {};
  for (const option of state.schema.options) {
    if (visibleOption(option) && option.field in state.options) chosen[option.field] = state.options[option.field];
  }
  return chosen;
}

// ---------- people ----------
async function findPeople() {
  if (!state.target) { showError("choose a target first"); return; }
  const button = $("#find-people");
  button.disabled = true;
  button.textContent = "Finding people…";
  try {
    const found = await (await postJSON("/api/people", { target: state.target.path, options: chosenOptions() })).json();
    if (!found.people.length) throw new Error("no face found on the sampled frames of the target");
    const first = state.sources[0]?.path ?? null;
    state.people = found.people.map((person, index) => ({ ...person, source: index === 0 ? first : null }));
    clearError();
    renderPeople();
    requestPreview();
  } catch (error) { showError(error.message); }
  finally { button.disabled = false; button.textContent = "Find people"; }
}

function renderPeople() {
  $("#clear-people").hidden = !state.people;
  if (!state.people) { $("#people").replaceChildren(); return; }
  $("#people").replaceChildren(...state.people.map((person) => {
    const select = element("select", { "aria-label": `source for person ${person.id}` });
    select.append(element("option", { value: "", text: "leave unchanged" }));
    for (const source of state.sources) select.append(element("option", { value: source.path, text: source.name }));
    select.value = person.source ?? "";
    select.onchange = () => { person.source = select.value || null; requestPreview(); };
    return element("div", { class: "person", "data-person": person.id },
      element("img", { src: person.thumbnail, alt: `person ${person.id}` }),
      element("div", { class: "meta", text: `person ${person.id} · seen on ${person.seen} sampled frame(s)` }), select);
  }));
}

const peopleMap = () => state.people
  ? state.people.map((p) => ({ frame: p.frame, box: p.box, source: p.source })) : null;

// ---------- preview ----------
function requestPreview() {
  state.previewWanted = true;
  if (!state.previewBusy) sendPreview();
}

async function sendPreview() {
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
      mode: state.mode, options: chosenOptions(), people: peopleMap(), client: state.client, seq,
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
        + `${response.headers.get("X-Ms")} ms server, ${Math.round(performance.now() - started)} ms total`;
      clearError();
    }
  } catch (error) {
    showError(error.message);
  } finally {
    state.previewBusy = false;
    if (state.previewWanted) sendPreview();
  }
}

// ---------- queue ----------
async function startRun() {
  if (!state.target || !state.sources.length) { showError("choose a source photo and a target first"); return; }
  try {
    const body = { sources: state.sources.map((s) => s.path), target: state.target.path,
      options: chosenOptions(), people: peopleMap() };
    const output = $("#output").value.trim();
    if (output) body.output = output;
    const job = await (await postJSON("/api/jobs", body)).json();
    clearError();
    renderJobs([job, ...[...state.jobs.values()].map((card) => card.job).filter((j) => j.id !== job.id)]);
  } catch (error) { showError(error.message); }
}

const clock = (seconds) => seconds == null ? "–"
  : `${Math.floor(seconds / 60)}:${String(Math.round(seconds % 60)).padStart(2, "0")}`;

function renderJobs(jobs) {
  $("#queue-empty").hidden = jobs.length > 0;
  const list = $("#queue");
  for (const job of [...jobs].sort((a, b) => b.id - a.id)) {
    let card = state.jobs.get(job.id);
    if (!card) {
      card = { node: jobNode(job), job: null };
      state.jobs.set(job.id, card);
    }
    updateJob(card, job);
  }
  list.replaceChildren(...[...state.jobs.values()].sort((a, b) => b.job.id - a.job.id).map((card) => card.node));
}

function jobNode(job) {
  const node = element("li", { class: "job", "data-job": job.id });
  node.innerHTML = `<div class="head"><span class="state"></span><span class="title"></span>
    <button class="cancel">Cancel</button><button class="retry">Retry</button></div>
    <progress max="1" value="0"></progress><div class="stats mono"></div><div class="job-error"></div>
    <details><summary>Command line</summary><pre class="command"></pre></details><div class="result"></div>`;
  $(".cancel", node).onclick = () => postJSON(`/api/jobs/${job.id}/cancel`, {}).catch((e) => showError(e.message));
  $(".retry", node).onclick = () => postJSON(`/api/jobs/${job.id}/retry`, {}).catch((e) => showError(e.message));
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
  $(".job-error", node).textContent = job.error || "";
  $(".command", node).textContent = job.command;
  if (job.state === "done" && (!previous || previous.state !== "done")) $(".result", node).replaceChildren(...resultNodes(job));
  if (job.state !== "done") $(".result", node).replaceChildren();
}

function resultNodes(job) {
  const url = `/api/jobs/${job.id}/output`;
  const media = job.kind === "image"
    ? element("img", { class: "result-image", src: `${url}?t=${Date.now()}`, alt: "output" })
    : element("video", { src: `${url}?t=${Date.now()}`, controls: "", preload: "auto" });
  const nodes = [media, element("div", { class: "row" },
    element("a", { href: `${url}?download=true`, download: baseName(job.output), class: "button download", text: "Download" }),
    element("span", { class: "hint mono", text: job.output }))];
  if (job.quality) nodes.push(qualityTable(job.quality));
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
    element("tr", {}, element("th", { text: label }), element("td", { class: "mono", text: value }))));
}

function listenToQueue() {
  const events = new EventSource("/api/events");
  events.onmessage = (event) => renderJobs(JSON.parse(event.data).jobs);
}

// ---------- start ----------
async function start() {
  $("#error-close").onclick = clearError;
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
    $(".upload", pick).onchange = (event) => { if (event.target.files[0]) upload(role, event.target.files[0]); event.target.value = ""; };
  }
  $("#frame").oninput = (event) => {
    state.frame = Number(event.target.value);
    $("#frame-label").textContent = `frame ${state.frame}`;
    requestPreview();
  };
  for (const button of document.querySelectorAll("#modes button")) {
    button.onclick = () => {
      state.mode = button.dataset.mode;
      document.querySelectorAll("#modes button").forEach((b) => b.classList.toggle("on", b === button));
      requestPreview();
    };
  }
  $("#find-people").onclick = findPeople;
  $("#clear-people").onclick = () => { state.people = null; renderPeople(); requestPreview(); };
  $("#start").onclick = startRun;
  listenToQueue();
  document.body.dataset.ready = "true";
}

start();
