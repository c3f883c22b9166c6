// The Live tab: the browser's camera → the server (JPEG frames over a WebSocket) → swapped frames back, drawn
// beside the frame they came from. Sources and options are the page's own (the source list, the options panel).
"use strict";

(() => {
  const SIZES = ["640x480", "1280x720", "320x240"];
  const live = { socket: null, camera: null, timer: null, sent: new Map(), frames: 0, latencies: [], shown: 0 };

  function make(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (key === "text") node.textContent = value; else node.setAttribute(key, value);
    }
    node.append(...children);
    return node;
  }

  function fail(message) {
    const place = document.querySelector("#live-error");
    if (typeof showError === "function") showError(message, place);
    else { place.textContent = message; place.hidden = false; }
    stop(message);
  }

  // ---------- the tab and its card ----------
  document.head.append(make("link", { rel: "stylesheet", href: "/static/live.css" }));
  const preview = document.querySelector("#preview-box").closest(".card");
  const tabs = make("div", { id: "pane-tabs", class: "segmented", role: "group", "aria-label": "preview or live camera" },
    make("button", { type: "button", "data-tab": "preview", class: "on", "aria-pressed": "true", text: "Preview" }),
    make("button", { type: "button", "data-tab": "live", "aria-pressed": "false", text: "Live camera" }));
  const card = make("section", { id: "live-card", class: "card", "aria-labelledby": "live-title", hidden: "" },
    make("h2", { id: "live-title", text: "Live camera" }),
    make("p", { class: "hint", text: "Your camera, swapped with the source photos and options of this page " +
      "(options that need a file are not used). Frames that the server cannot keep up with are dropped." }),
    make("div", { class: "row" },
      make("select", { id: "live-size", "aria-label": "camera size" }),
      make("button", { type: "button", id: "live-start", class: "primary", text: "Start camera" }),
      make("button", { type: "button", id: "live-stop", text: "Stop", disabled: "" })),
    make("div", { class: "live-views" },
      make("figure", {}, make("canvas", { id: "live-input", width: "640", height: "480" }),
        make("figcaption", { text: "camera" })),
      make("figure", {}, make("canvas", { id: "live-output", width: "640", height: "480", "data-frames": "0" }),
        make("figcaption", { text: "swapped" }))),
    make("p", { id: "live-status", class: "hint mono", role: "status", text: "stopped" }),
    make("p", { id: "live-note", class: "hint" }),
    make("p", { id: "live-error", class: "inline-error", hidden: "" }));
  preview.before(tabs);
  preview.after(card);
  for (const size of SIZES) document.querySelector("#live-size").append(make("option", { value: size, text: size }));
  const video = make("video", { muted: "", playsinline: "", hidden: "" });
  const grab = make("canvas");
  card.append(video);

  tabs.addEventListener("click", (event) => {
    const tab = event.target.closest("button")?.dataset.tab;
    if (!tab) return;
    for (const button of tabs.querySelectorAll("button")) {
      button.classList.toggle("on", button.dataset.tab === tab);
      button.setAttribute("aria-pressed", String(button.dataset.tab === tab));
    }
    card.hidden = tab !== "live";
    preview.hidden = tab === "live";
    if (tab !== "live") stop("stopped");
  });

  // ---------- streaming ----------
  async function start() {
    const error = document.querySelector("#live-error");
    if (typeof clearError === "function") clearError(error); else error.hidden = true;
    const sources = typeof state !== "undefined" ? state.sources.map((s) => s.path) : [];
    if (!sources.length) { fail("choose a source photo first"); return; }
    const options = typeof chosenOptions === "function" ? chosenOptions() : {};
    const [width, height] = document.querySelector("#live-size").value.split("x").map(Number);
    try {
      live.camera = await navigator.mediaDevices.getUserMedia({ video: { width, height }, audio: false });
    } catch (error) { fail(`the camera cannot be opened: ${error.message}`); return; }
    video.srcObject = live.camera;
    await video.play();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = live.socket = new WebSocket(`${scheme}://${location.host}/api/live${location.search}`);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => socket.send(JSON.stringify({ sources, options }));
    socket.onmessage = (event) => (typeof event.data === "string" ? onMessage(JSON.parse(event.data))
      : onFrame(event.data));
    socket.onclose = (event) => { if (live.socket === socket) stop(event.reason || "the server closed the stream"); };
    document.querySelector("#live-start").disabled = true;
    document.querySelector("#live-stop").disabled = false;
    status("starting (loading models)…");
  }

  function onMessage(message) {
    if (message.error) { fail(message.error); return; }
    if (message.ready) {
      status(`streaming on ${message.device}`);
      document.querySelector("#live-note").textContent = message.unused.length
        ? `Not used live: ${message.unused.join(", ")}.` : "";
      live.shown = performance.now();
      live.latencies = [];
      live.timer = setInterval(sendFrame, 1000 / 30);
      return;
    }
    live.server = message;
  }

  function sendFrame() {
    const socket = live.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN || socket.bufferedAmount > 0 || live.encoding) return;
    if (!video.videoWidth) return;
    grab.width = video.videoWidth;
    grab.height = video.videoHeight;
    grab.getContext("2d").drawImage(video, 0, 0);
    const stamp = performance.now();
    live.encoding = true;
    createImageBitmap(grab).then((bitmap) => {
      live.sent.set(stamp, bitmap);
      for (const old of [...live.sent.keys()].filter((k) => k < stamp - 5000)) dropSent(old);
    });
    grab.toBlob(async (blob) => {
      live.encoding = false;
      if (!blob || live.socket !== socket) return;
      const header = new ArrayBuffer(8);
      new DataView(header).setFloat64(0, stamp, true);
      socket.send(await new Blob([header, blob]).arrayBuffer());
    }, "image/jpeg", 0.9);
  }

  function dropSent(stamp) {
    live.sent.get(stamp)?.close();
    live.sent.delete(stamp);
  }

  async function onFrame(data) {
    const stamp = new DataView(data, 0, 8).getFloat64(0, true);
    const bitmap = await createImageBitmap(new Blob([data.slice(8)], { type: "image/jpeg" }));
    const output = document.querySelector("#live-output");
    const input = document.querySelector("#live-input");
    for (const canvas of [output, input]) {
      if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
        canvas.width = bitmap.width;
        canvas.height = bitmap.height;
      }
    }
    output.getContext("2d").drawImage(bitmap, 0, 0);
    bitmap.close();
    const sent = live.sent.get(stamp);
    if (sent) input.getContext("2d").drawImage(sent, 0, 0);
    for (const old of [...live.sent.keys()].filter((k) => k <= stamp)) dropSent(old);
    live.frames += 1;
    output.dataset.frames = String(live.frames);
    live.latencies.push(performance.now() - stamp);
    if (performance.now() - live.shown > 1000) showStats();
  }

  function showStats() {
    const seconds = (performance.now() - live.shown) / 1000;
    const latency = live.latencies.length ? live.latencies.reduce((a, b) => a + b, 0) / live.latencies.length : 0;
    const fps = seconds > 0 ? live.latencies.length / seconds : 0;
    const server = live.server ? `; server ${live.server.fps} frames/s, swap ${live.server.ms} ms, ` +
      `${live.server.dropped} dropped` : "";
    status(`${fps.toFixed(1)} frames/s, latency ${latency.toFixed(0)} ms (camera to screen)${server}`);
    live.latencies = [];
    live.shown = performance.now();
  }

  function stop(message) {
    clearInterval(live.timer);
    live.timer = null;
    const socket = live.socket;
    live.socket = null;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close();
    if (live.camera) for (const track of live.camera.getTracks()) track.stop();
    live.camera = null;
    for (const stamp of [...live.sent.keys()]) dropSent(stamp);
    live.encoding = false;
    live.server = null;
    document.querySelector("#live-start").disabled = false;
    document.querySelector("#live-stop").disabled = true;
    if (message) status(message);
  }

  function status(text) { document.querySelector("#live-status").textContent = text; }

  document.querySelector("#live-start").addEventListener("click", start);
  document.querySelector("#live-stop").addEventListener("click", () => stop("stopped"));
})();
