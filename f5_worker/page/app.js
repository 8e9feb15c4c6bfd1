// The page's logic (docs/page.md). Every call goes to POST v1/synthesize on the server the page came from
// (the worker's HTTP server, or `python -m f5_worker.page --endpoint URL`), whose answers are the native
// results: a streamed job answers text/event-stream, one `data: <item>` event per piece, the last with
// `done: true`. Each piece is decoded and scheduled with the Web Audio API at its `offset`, so playback starts
// with the first piece; the word lit is the one whose [start, end) holds the playback position.
"use strict";

const ENDPOINT = "v1/synthesize";  // relative: the page's own server
const CAPTION_FORMATS = ["srt", "vtt", "ass"];
const CAPTION_TYPES = {srt: "application/x-subrip", vtt: "text/vtt", ass: "text/x-ssa"};
const AUDIO_TYPES = {wav: "audio/wav", flac: "audio/wav", mp3: "audio/mpeg", opus: "audio/ogg", pcm: "audio/L16"};
const SAMPLE_RATE = 24000;  // the models' rate: the audio context runs at it, so a piece decodes sample for sample
const PX_PER_S = 90;  // the timeline's scale, pixels per second of audio
const CANVAS_MAX_S = 10;  // a waveform canvas covers at most this much audio (browsers cap a canvas's width)
const MAX_WAVE_GAIN = 8;  // a quiet waveform is drawn up to this much larger, so its shape shows
const LEAD_S = 0.05;  // playback starts this far ahead of the audio clock, so the first samples are not cut
const TICK_MS = 40;  // how often the position, the lit word and the playhead are brought up to date
const TAG = /\[[^\]\n]*\]|<[^>\n]*>/g;  // script markup in a text: shown, never lit

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

// -- what happened, in order ------------------------------------------------------------------------------

const events = [];  // {type, at (ms since the page loaded), ...}: shown under "What happened"
let requestStarted = 0;

function note(type, detail = {}, text = "") {
  const event = {type, at: Math.round(performance.now()), ...detail};
  events.push(event);
  const item = document.createElement("li");
  item.textContent = `${((performance.now() - requestStarted) / 1000).toFixed(2)} s: ${text || type}`;
  $("#events").append(item);
  return event;
}

// -- talking to the server ---------------------------------------------------------------------------------

class ApiError extends Error {}

async function post(body, {signal, accept = "application/json"} = {}) {
  return fetch(ENDPOINT, {method: "POST", headers: {"Content-Type": "application/json", "Accept": accept},
                          body: JSON.stringify(body), signal});
}

async function errorOf(response) {
  const text = await response.text();
  try {
    const data = JSON.parse(text);
    const error = data.error;
    if (typeof error === "string") return error;
    if (error && typeof error.message === "string") return error.message;
  } catch (_) { /* not JSON: the text itself */ }
  return `the server answered ${response.status}${text ? ": " + text.slice(0, 300) : ""}`;
}

async function call(body) {
  const response = await post(body);
  if (!response.ok) throw new ApiError(await errorOf(response));
  const result = await response.json();
  if (result && typeof result.error === "string") throw new ApiError(result.error);
  return Array.isArray(result) && result.length === 1 ? result[0] : result;
}

async function* sseItems(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += value;
    let match;
    while ((match = /\r?\n\r?\n/.exec(buffer))) {
      const block = buffer.slice(0, match.index);
      buffer = buffer.slice(match.index + match[0].length);
      const data = block.split(/\r?\n/).filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, "")).join("\n");
      if (data) yield JSON.parse(data);
    }
  }
}

// -- errors next to the field they name --------------------------------------------------------------------

function fieldOf(message) {
  const match = /^([A-Za-z_][\w.]*): /.exec(message);
  return match ? match[1] : null;
}

function controlFor(form, field) {
  for (let name = field; name; name = name.includes(".") ? name.slice(0, name.lastIndexOf(".")) : "") {
    const control = $$("[data-field]", form).find((c) => c.dataset.field.split(" ").includes(name) &&
                                                        !c.closest("[hidden]"));
    if (control) return control;
  }
  return null;
}

function showError(form, message) {
  const control = controlFor(form, fieldOf(message) || "");
  if (!control) {
    $(".form-error", form).textContent = message;
    return;
  }
  const id = `${control.id}-error`;
  let slot = document.getElementById(id);
  if (!slot) {
    slot = document.createElement("p");
    slot.className = "field-error";
    slot.id = id;
    slot.setAttribute("role", "alert");
    control.closest(".field").append(slot);
  }
  slot.textContent = message;
  control.setAttribute("aria-invalid", "true");
  const described = (control.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
  if (!described.includes(id)) control.setAttribute("aria-describedby", [...described, id].join(" "));
  control.focus({preventScroll: false});
}

function clearErrors(form) {
  $$(".field-error, .form-error", form).forEach((slot) => { slot.textContent = ""; });
  $$("[aria-invalid]", form).forEach((control) => control.removeAttribute("aria-invalid"));
}

// -- audio ----------------------------------------------------------------------------------------------

let audio = null;

function audioContext() {
  if (!audio) audio = new AudioContext({sampleRate: SAMPLE_RATE});
  if (audio.state === "suspended") audio.resume();
  return audio;
}

function bytesOf(base64) {
  const text = atob(base64.replace(/^data:[^,]*,/, ""));
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

async function decode(bytes, format, sampleRate) {
  const context = audioContext();
  if (format === "pcm") {  // raw signed 16-bit little-endian mono
    const samples = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const buffer = context.createBuffer(1, Math.max(1, bytes.byteLength >> 1), sampleRate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < bytes.byteLength >> 1; i++) channel[i] = samples.getInt16(2 * i, true) / 32768;
    return buffer;
  }
  return context.decodeAudioData(bytes.slice().buffer);
}

function wavFile(buffers, sampleRate) {
  // 16-bit PCM: the worker's own WAV samples, so the file holds exactly what was played
  const length = buffers.reduce((n, b) => n + b.length, 0);
  const view = new DataView(new ArrayBuffer(44 + 2 * length));
  const text = (at, s) => [...s].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * length, true); text(8, "WAVEfmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, sampleRate, true); view.setUint32(28, 2 * sampleRate, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, 2 * length, true);
  let at = 44;
  for (const buffer of buffers) {
    for (const x of buffer.getChannelData(0)) {
      view.setInt16(at, Math.max(-32768, Math.min(32767, Math.round(x * 32768))), true);
      at += 2;
    }
  }
  return new Blob([view], {type: "audio/wav"});
}

// -- a track: audio in pieces, its words, the text they light, a timeline -----------------------------------

class Track {
  constructor(root) {
    // the widgets come from the one template; the ids a label needs, from the track's name
    root.append($("#track-template").content.cloneNode(true));
    const position = `${root.dataset.track}-position`;
    $(".position", root).id = position;
    $$("[data-for=position]", root).forEach((node) => node.setAttribute("for", position));
    $(".reader", root).setAttribute("aria-label", root.dataset.readerLabel);
    this.root = root;
    this.name = root.dataset.track;
    this.reader = $(".reader", root);
    this.playButton = $(".play", root);
    this.slider = $(".position", root);
    this.clock = $(".clock", root);
    this.timeline = $(".timeline", root);
    this.lane = $(".lane", root);
    this.playhead = $(".playhead", root);
    this.facts = $(".facts", root);
    this.downloads = $(".downloads", root);
    this.urls = [];
    this.dragging = false;
    this.playButton.addEventListener("click", () => (this.playing ? this.pause() : this.play()));
    this.slider.addEventListener("input", () => this.seek(Number(this.slider.value)));
    this.slider.addEventListener("pointerdown", () => { this.dragging = true; });
    this.slider.addEventListener("pointerup", () => { this.dragging = false; });
    this.lane.addEventListener("click", (event) => {
      const box = event.target.closest(".word");
      if (box) this.playFrom(Number(box.dataset.i));
    });
    this.lane.addEventListener("keydown", (event) => this.onKey(event));
    this.reader.addEventListener("click", (event) => {
      const span = event.target.closest(".word");
      if (span) this.playFrom(Number(span.dataset.i));
    });
    this.reset();
  }

  reset() {
    this.stopSources();
    clearInterval(this.ticker);
    this.ticker = null;
    this.pieces = [];
    this.words = [];
    this.duration = 0;  // seconds received (the pieces follow one another from 0)
    this.complete = false;
    this.playing = false;
    this.pausedAt = 0;
    this.anchor = 0;  // the audio clock's time at position 0, while playing
    this.origin = 0;  // where playing last started
    this.lit = -1;
    this.focused = 0;
    this.spec = {text: ""};
    this.urls.forEach((url) => URL.revokeObjectURL(url));
    this.urls = [];
    this.files = {};  // file name -> Blob, as offered for download
    $$("canvas, .word", this.lane).forEach((node) => node.remove());
    this.lane.style.width = "";
    this.reader.textContent = "";
    this.facts.textContent = "";
    this.downloads.textContent = "";
    this.root.classList.remove("has-audio");
    this.playButton.disabled = true;
    this.slider.disabled = true;
    this.update();
  }

  // what the words index: {text} or {segments: [{text, voice}]}
  show(spec) {
    this.spec = spec;
    this.render();
  }

  addPiece(offset, buffer, seq) {
    const piece = {offset, buffer, seq, end: offset + buffer.duration, started: false, source: null};
    this.pieces.push(piece);
    this.duration = Math.max(this.duration, piece.end);
    this.draw(piece);
    this.root.classList.add("has-audio");
    this.playButton.disabled = false;
    this.slider.disabled = false;
    if (this.playing) {
      const context = audioContext();
      if (context.currentTime - this.anchor > offset - LEAD_S) {  // it came late: play on from it, now
        this.anchor = context.currentTime + LEAD_S - offset;
        this.origin = offset;
      }
      this.schedule(piece);
    }
    this.update();
  }

  addWords(words) {
    const first = this.words.length;
    this.words.push(...words);
    words.forEach((word, k) => this.box(word, first + k));
    this.render();
  }

  finish(duration) {
    this.complete = true;
    if (duration > this.duration) this.duration = duration;
    this.update();
  }

  // -- the clock

  position() {
    if (!this.playing) return this.pausedAt;
    // until the audio begins (LEAD_S), the position is where playing was asked to start
    return Math.max(this.origin, Math.min(audioContext().currentTime - this.anchor, this.duration));
  }

  play(from = this.position()) {
    if (!this.pieces.length) return;
    if (this.complete && from >= this.duration - 1e-3) from = 0;
    const context = audioContext();
    this.stopSources();
    this.anchor = context.currentTime + LEAD_S - from;
    this.origin = from;
    this.playing = true;
    this.pieces.forEach((piece) => { piece.started = piece.end <= from ? piece.started : false; this.schedule(piece); });
    this.playButton.textContent = "Pause";
    this.playButton.setAttribute("aria-label", "Pause");
    if (!this.ticker) this.ticker = setInterval(() => this.update(), TICK_MS);
    this.update();
  }

  pause() {
    this.pausedAt = this.position();
    this.playing = false;
    this.stopSources();
    this.playButton.textContent = "Play";
    this.playButton.setAttribute("aria-label", "Play");
    this.update();
  }

  seek(t) {
    t = Math.max(0, Math.min(Number.isFinite(t) ? t : 0, this.duration));
    if (this.playing) this.play(t);
    else {
      this.pausedAt = t;
      this.update();
    }
  }

  playFrom(index) {
    const word = this.words[index];
    if (!word) return;
    this.focused = index;
    this.play(word.start);
  }

  schedule(piece) {
    const context = audioContext();
    const startAt = this.anchor + piece.offset;
    const into = Math.max(0, context.currentTime - startAt);
    if (into >= piece.buffer.duration) return;
    const source = context.createBufferSource();
    source.buffer = piece.buffer;
    source.connect(context.destination);
    source.start(Math.max(startAt, context.currentTime), into);
    piece.source = source;
  }

  stopSources() {
    (this.pieces || []).forEach((piece) => {
      if (piece.source) {
        try { piece.source.stop(); } catch (_) { /* never started */ }
        piece.source.disconnect();
        piece.source = null;
      }
    });
  }

  update() {
    const t = this.position();
    if (this.playing) {
      const raw = audioContext().currentTime - this.anchor;
      for (const piece of this.pieces) {
        if (!piece.started && raw >= piece.offset && raw < piece.end) {
          piece.started = true;
          note("playing", {track: this.name, seq: piece.seq},
               `${this.name}: piece ${piece.seq} playing (at ${piece.offset.toFixed(2)} s)`);
        }
      }
      if (this.complete && raw >= this.duration) {
        this.pausedAt = this.duration;
        this.playing = false;
        this.stopSources();
        this.playButton.textContent = "Play";
        this.playButton.setAttribute("aria-label", "Play");
        note("ended", {track: this.name}, `${this.name}: played to the end`);
      }
      this.root.classList.toggle("waiting", !this.complete && raw > this.duration);
    }
    if (!this.playing && this.ticker) {
      clearInterval(this.ticker);
      this.ticker = null;
    }
    this.slider.max = String(this.duration);
    if (!this.dragging) this.slider.value = String(t);
    this.slider.setAttribute("aria-valuetext", `${t.toFixed(2)} seconds of ${this.duration.toFixed(2)}`);
    this.clock.textContent = `${t.toFixed(2)} / ${this.duration.toFixed(2)} s${this.complete ? "" : " …"}`;
    const x = t * PX_PER_S;
    this.playhead.style.left = `${x}px`;
    if (this.playing) {
      const view = this.timeline;
      if (x < view.scrollLeft || x > view.scrollLeft + view.clientWidth - 40) view.scrollLeft = Math.max(0, x - 40);
    }
    this.light(this.words.findIndex((w) => w.start <= t && t < w.end));
  }

  light(index) {
    if (index === this.lit) return;
    for (const node of $$(`.word[data-i="${this.lit}"]`, this.root)) {
      node.classList.remove("lit");
      node.removeAttribute("aria-current");
    }
    this.lit = index;
    for (const node of $$(`.word[data-i="${index}"]`, this.root)) {
      node.classList.add("lit");
      node.setAttribute("aria-current", "true");
    }
  }

  // -- drawing

  draw(piece) {
    const ratio = window.devicePixelRatio || 1;
    const samples = piece.buffer.getChannelData(0);
    const rate = piece.buffer.sampleRate;
    for (let from = 0; from < piece.buffer.duration; from += CANVAS_MAX_S) {
      const seconds = Math.min(CANVAS_MAX_S, piece.buffer.duration - from);
      const canvas = document.createElement("canvas");
      const width = Math.max(1, Math.round(seconds * PX_PER_S));
      canvas.width = Math.max(1, Math.round(width * ratio));
      canvas.height = Math.round(72 * ratio);
      canvas.style.width = `${width}px`;
      canvas.style.left = `${(piece.offset + from) * PX_PER_S}px`;
      canvas.setAttribute("aria-hidden", "true");
      const g = canvas.getContext("2d");
      g.fillStyle = getComputedStyle(document.documentElement).getPropertyValue("--wave") || "#6f8fb3";
      const start = Math.round(from * rate);
      const perColumn = (seconds * rate) / canvas.width;
      const middle = canvas.height / 2;
      let peak = 0;
      for (let i = start; i < Math.min(samples.length, start + seconds * rate); i++) peak = Math.max(peak, Math.abs(samples[i]));
      const gain = Math.min(MAX_WAVE_GAIN, 0.95 / Math.max(peak, 1e-6)) * middle;  // quiet audio drawn larger
      for (let column = 0; column < canvas.width; column++) {
        let low = 0;
        let high = 0;
        const end = Math.min(samples.length, start + Math.ceil((column + 1) * perColumn));
        for (let i = start + Math.floor(column * perColumn); i < end; i++) {
          if (samples[i] < low) low = samples[i];
          if (samples[i] > high) high = samples[i];
        }
        g.fillRect(column, middle - high * gain, 1, Math.max(1, (high - low) * gain));
      }
      this.lane.prepend(canvas);
    }
    this.lane.style.width = `${Math.ceil(this.duration * PX_PER_S) + 2}px`;
  }

  box(word, index) {
    const box = document.createElement("button");
    box.type = "button";
    box.className = "word";
    box.dataset.i = String(index);
    box.textContent = word.word ?? word.char ?? "";
    box.tabIndex = index === this.focused ? 0 : -1;
    box.style.left = `${word.start * PX_PER_S}px`;
    box.style.width = `${Math.max(3, (word.end - word.start) * PX_PER_S)}px`;
    box.title = `${box.textContent}: ${word.start.toFixed(3)}–${word.end.toFixed(3)} s`;
    box.setAttribute("aria-label", `${box.textContent}, at ${word.start.toFixed(2)} seconds`);
    this.lane.append(box);
  }

  onKey(event) {
    const box = event.target.closest(".word");
    if (!box) return;
    const moves = {ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1, Home: -Infinity, End: Infinity};
    if (!(event.key in moves)) return;
    event.preventDefault();
    const step = moves[event.key];
    const last = this.words.length - 1;
    const next = Math.max(0, Math.min(last, Number.isFinite(step) ? Number(box.dataset.i) + step : step < 0 ? 0 : last));
    box.tabIndex = -1;
    const target = $(`.lane .word[data-i="${next}"]`, this.root);
    target.tabIndex = 0;
    target.focus();
    this.focused = next;
    const x = this.words[next].start * PX_PER_S;
    if (x < this.timeline.scrollLeft || x > this.timeline.scrollLeft + this.timeline.clientWidth - 40) {
      this.timeline.scrollLeft = Math.max(0, x - 40);
    }
  }

  render() {
    // the text as typed, each timed word a span: char_start/char_end index the text (a segment's, with segments)
    const reader = this.reader;
    reader.textContent = "";
    const parts = this.spec.segments || [{text: this.spec.text || ""}];
    parts.forEach((part, s) => {
      const paragraph = document.createElement("p");
      if (this.spec.segments) {
        const speaker = document.createElement("span");
        speaker.className = "speaker";
        speaker.textContent = part.voice || "the request's voice";
        paragraph.append(speaker);
      }
      const text = typeof part.text === "string" ? part.text : "";
      const words = this.words.map((word, i) => [word, i])
        .filter(([word]) => !this.spec.segments || (word.segment ?? 0) === s)
        .sort((a, b) => a[0].char_start - b[0].char_start);
      let at = 0;
      for (const [word, i] of words) {
        if (!(word.char_start >= at && word.char_end <= text.length)) continue;
        plain(paragraph, text.slice(at, word.char_start));
        const span = document.createElement("span");
        span.className = "word" + (i === this.lit ? " lit" : "");
        span.dataset.i = String(i);
        span.textContent = text.slice(word.char_start, word.char_end);
        paragraph.append(span);
        at = word.char_end;
      }
      plain(paragraph, text.slice(at));
      reader.append(paragraph);
    });
  }

  offer(label, name, blob) {
    const url = URL.createObjectURL(blob);
    this.urls.push(url);
    this.files[name] = blob;
    this.link(label, name, url);
  }

  link(label, name, url) {
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    a.textContent = label;
    this.downloads.append(a);
  }
}

function plain(parent, text) {
  let at = 0;
  for (const match of text.matchAll(TAG)) {
    parent.append(text.slice(at, match.index));
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = match[0];
    parent.append(tag);
    at = match.index + match[0].length;
  }
  parent.append(text.slice(at));
}

function offerCaptions(track, captions, stem) {
  for (const format of CAPTION_FORMATS) {
    if (captions && typeof captions[format] === "string") {
      track.offer(`Captions (${format.toUpperCase()})`, `${stem}.${format}`,
                  new Blob([captions[format]], {type: CAPTION_TYPES[format]}));
    }
  }
}

// -- speak ------------------------------------------------------------------------------------------------

const tracks = {};
const results = {};
let speaking = null;  // the AbortController of the speech being fetched

function speakRequest(form) {
  const mode = $("input[name=mode]:checked", form).value;
  const body = {output_format: $("#output_format").value, caption_formats: CAPTION_FORMATS};
  let spec;
  if (mode === "segments") {
    let segments;
    try {
      segments = JSON.parse($("#segments").value);
    } catch (error) {
      throw new ApiError(`segments: is not valid JSON (${error.message})`);
    }
    if (!Array.isArray(segments)) throw new ApiError("segments: must be a JSON list of turns");
    body.segments = segments;
    spec = {segments: segments.map((s) => ({text: s && s.text, voice: s && (s.voice || (s.ref_audio_url || s.ref_audio_base64 ? "ref" : ""))}))};
  } else {
    body.text = $("#text").value;
    spec = {text: body.text};
  }
  if ($("#voice").value) body.voice = $("#voice").value;
  if ($("#model").value) body.model = $("#model").value;
  const speed = $("#speed").value.trim();
  if (speed !== "" && Number(speed) !== 1) body.speed = Number(speed);
  if ($("#speed").validity.badInput) throw new ApiError("speed: must be a number");
  const steps = $("#nfe_step").value.trim();
  if (steps !== "") body.nfe_step = Number(steps);
  if ($("#nfe_step").validity.badInput) throw new ApiError("nfe_step: must be a whole number");
  const seed = $("#seed").value.trim();
  if (seed !== "") body.seed = Number(seed);
  if ($("#seed").validity.badInput) throw new ApiError("seed: must be a whole number");
  return {body, spec};
}

async function speak(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  let request;
  try {
    request = speakRequest(form);
  } catch (error) {
    showError(form, error.message);
    return;
  }
  audioContext();  // made (or resumed) within the click, so the browser lets it play
  if (speaking) speaking.abort();
  const controller = new AbortController();
  speaking = controller;
  const track = tracks.speak;
  track.reset();
  track.show(request.spec);
  results.speak = null;
  $("#events").textContent = "";
  requestStarted = performance.now();
  $("#speak-stop").disabled = false;
  const run = {format: request.body.output_format, bytes: [], buffers: [], seq: 0, rate: SAMPLE_RATE};
  note("request", {body: request.body}, "asked for the speech, streamed");
  try {
    let response = await post({...request.body, stream: true}, {signal: controller.signal, accept: "text/event-stream"});
    if (!response.ok) {
      const message = await errorOf(response);
      if (fieldOf(message) !== "stream") throw new ApiError(message);
      note("no-stream", {}, "this endpoint does not stream: asked for the whole speech");
      response = await post(request.body, {signal: controller.signal});
      if (!response.ok) throw new ApiError(await errorOf(response));
    }
    let done = false;
    const type = response.headers.get("content-type") || "";
    note("answer", {contentType: type}, `answered with ${type.split(";")[0]}`);
    if (type.startsWith("text/event-stream")) {
      for await (const item of sseItems(response)) done = (await onItem(item, run, controller)) || done;
    } else {
      const data = await response.json();
      for (const item of Array.isArray(data) ? data : [data]) done = (await onItem(item, run, controller)) || done;
    }
    if (!done) throw new ApiError("the stream ended before its last item");
  } catch (error) {
    if (controller.signal.aborted) note("stopped", {}, "stopped");
    else {
      note("error", {message: error.message}, `error: ${error.message}`);
      showError(form, error instanceof ApiError ? error.message : `the request failed (${error.message})`);
    }
  } finally {
    if (speaking === controller) {
      speaking = null;
      $("#speak-stop").disabled = true;
    }
  }
}

async function onItem(item, run, controller) {
  if (controller.signal.aborted) return false;
  if (typeof item.error === "string") throw new ApiError(item.error);
  const track = tracks.speak;
  if (typeof item.audio_base64 === "string") {
    const seq = typeof item.seq === "number" ? item.seq : run.seq;
    run.seq = seq + 1;
    const offset = typeof item.offset === "number" ? item.offset : 0;
    note("received", {seq, offset, duration: item.duration},
         `piece ${seq} received (${Number(item.duration).toFixed(2)} s at ${offset.toFixed(2)} s)`);
    const bytes = bytesOf(item.audio_base64);
    const buffer = await decode(bytes, item.format || run.format, item.sample_rate || SAMPLE_RATE);
    if (controller.signal.aborted) return false;
    run.bytes.push(bytes);
    run.buffers.push(buffer);
    run.rate = item.sample_rate || run.rate;
    track.addPiece(offset, buffer, seq);
    if (Array.isArray(item.words)) track.addWords(item.words);
    if (!track.playing && run.buffers.length === 1) track.play(0);
  } else if (item.audio_omitted) {
    note("omitted", {seq: item.seq}, `piece ${item.seq} came without its audio`);
  }
  const whole = item.seq === undefined && typeof item.duration === "number" && !item.done;
  if (item.done || whole) {
    finishSpeech(item, run);
    return true;
  }
  return false;
}

function finishSpeech(result, run) {
  const track = tracks.speak;
  results.speak = result;
  track.finish(result.duration || 0);
  note("done", {duration: result.duration}, `last item: ${Number(result.duration).toFixed(3)} s in all`);
  const stem = "speech";
  if (result.audio_url) track.link("Audio (link)", `${stem}.${run.format}`, result.audio_url);
  if (run.buffers.length) {
    const joined = ["wav", "flac"].includes(run.format)
      ? wavFile(run.buffers, run.rate)
      : new Blob(run.bytes, {type: AUDIO_TYPES[run.format]});
    const extension = {wav: "wav", flac: "wav", mp3: "mp3", opus: "ogg", pcm: "pcm"}[run.format];
    track.offer(`Audio (${extension.toUpperCase()})`, `${stem}.${extension}`, joined);
  }
  offerCaptions(track, result.captions, stem);
  for (const index of (result.quality && result.quality.flagged_words) || []) {
    $$(`.lane .word[data-i="${index}"]`, track.root).forEach((box) => box.classList.add("flagged"));
  }
  const facts = [`${track.duration.toFixed(2)} s of audio`];
  if (result.pieces) facts.push(`${result.pieces} pieces`);
  if (result.model) facts.push(`model ${result.model}`);
  if (result.seed !== undefined) facts.push(`seed ${result.seed}`);
  if (result.quality) facts.push(`alignment score ${Number(result.quality.alignment_score).toFixed(2)}`);
  if (result.timing && result.timing.first_audio_ms) facts.push(`first audio after ${Math.round(result.timing.first_audio_ms)} ms`);
  (result.warnings || []).forEach((warning) => facts.push(warning));
  track.facts.textContent = facts.join(" · ");
}

function stopSpeaking() {
  if (speaking) speaking.abort();
  tracks.speak.pause();
}

// -- voices and models --------------------------------------------------------------------------------------

async function loadVoices() {
  const slot = $("#voices-error");
  slot.textContent = "";
  let listing;
  try {
    listing = await call({action: "list_voices"});
  } catch (error) {
    slot.textContent = error.message;
    return [];
  }
  const voices = listing.voices || [];
  const select = $("#voice");
  const chosen = select.value;
  $$("option:not([value=''])", select).forEach((option) => option.remove());
  const list = $("#voice-list");
  list.textContent = "";
  for (const voice of voices) {
    select.append(new Option(voice.name, voice.name));
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.className = "voice-name";
    name.textContent = voice.name;
    const text = document.createElement("span");
    text.className = "voice-text";
    text.textContent = `${Number(voice.duration).toFixed(1)} s · “${voice.ref_text}”`;
    const use = document.createElement("button");
    use.type = "button";
    use.textContent = "Use";
    use.setAttribute("aria-label", `Use voice ${voice.name}`);
    use.addEventListener("click", () => { select.value = voice.name; select.focus(); });
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Delete";
    remove.className = "delete";
    remove.dataset.voice = voice.name;
    remove.setAttribute("aria-label", `Delete voice ${voice.name}`);
    remove.addEventListener("click", () => deleteVoice(voice.name));
    item.append(name, text, use, remove);
    list.append(item);
  }
  if (!voices.length) {
    const item = document.createElement("li");
    item.textContent = "No voice is stored yet.";
    list.append(item);
  }
  select.value = voices.some((v) => v.name === chosen) ? chosen : "";
  return voices;
}

async function deleteVoice(name) {
  const slot = $("#voices-error");
  slot.textContent = "";
  try {
    await call({action: "delete_voice", name});
    note("deleted", {name}, `voice ${name} deleted`);
  } catch (error) {
    slot.textContent = error.message;
  }
  await loadVoices();
  $("#voices-refresh").focus();
}

function fileBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function uploadVoice(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const button = $("#upload-button");
  const body = {action: "upload_voice", name: $("#voice-name").value.trim()};
  const file = $("#voice-clip").files[0];
  if (file) body.audio_base64 = await fileBase64(file);
  if ($("#voice-text").value.trim()) body.ref_text = $("#voice-text").value.trim();
  if ($("#voice-overwrite").checked) body.overwrite = true;
  button.disabled = true;
  try {
    const result = await call(body);
    note("uploaded", {name: result.voice.name}, `voice ${result.voice.name} stored`);
    $(".form-error", form).textContent = "";
    await loadVoices();
    $("#voice").value = result.voice.name;
    $("#status").textContent = `Voice ${result.voice.name} stored (${Number(result.voice.duration).toFixed(1)} s).`;
  } catch (error) {
    showError(form, error.message);
  } finally {
    button.disabled = false;
  }
}

async function loadModels() {
  const listing = await call({action: "list_models"});
  const select = $("#model");
  select.options[0].textContent = `the endpoint's default (${listing.default})`;
  for (const model of listing.models || []) {
    const languages = (model.languages || []).join(", ");
    select.append(new Option(languages ? `${model.name} (${languages})` : model.name, model.name));
  }
  return listing;
}

// -- align ---------------------------------------------------------------------------------------------------

let recording = null;  // the File chosen or dropped

async function align(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const track = tracks.align;
  audioContext();
  track.reset();
  const text = $("#align-text").value;
  const body = {action: "align", text, caption_formats: CAPTION_FORMATS};
  const file = recording || $("#align-file").files[0];
  if (file) body.audio_base64 = await fileBase64(file);
  $("#align-button").disabled = true;
  requestStarted = performance.now();
  try {
    const result = await call(body);
    results.align = result;
    const buffer = await decode(bytesOf(body.audio_base64), "file", SAMPLE_RATE);
    track.show({text});
    track.addPiece(0, buffer, 0);
    track.addWords(result.words || []);
    track.finish(buffer.duration);
    offerCaptions(track, result.captions, (file.name || "recording").replace(/\.[^.]*$/, ""));
    track.facts.textContent = [`${Number(result.duration).toFixed(2)} s recording`, `aligner ${result.aligner}`,
      `alignment score ${Number(result.quality && result.quality.alignment_score).toFixed(2)}`].join(" · ");
    note("aligned", {words: (result.words || []).length}, `aligned ${(result.words || []).length} words`);
  } catch (error) {
    showError(form, error instanceof ApiError ? error.message : `the recording could not be read (${error.message})`);
  } finally {
    $("#align-button").disabled = false;
  }
}

function dropZone() {
  const zone = $("#align-drop");
  const input = $("#align-file");
  input.addEventListener("change", () => { recording = input.files[0] || null; });
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const file = event.dataTransfer.files[0];
    if (file) {
      recording = file;
      $("label", zone).textContent = `Recording: ${file.name}`;
    }
  });
}

// -- start -------------------------------------------------------------------------------------------------

function chooseMode() {
  const mode = $("input[name=mode]:checked").value;
  $$("[data-mode]").forEach((node) => { node.hidden = node.dataset.mode !== mode; });
}

async function start() {
  for (const root of $$(".track")) tracks[root.dataset.track] = new Track(root);
  $("#speak-form").addEventListener("submit", speak);
  $("#speak-stop").addEventListener("click", stopSpeaking);
  $("#upload-form").addEventListener("submit", uploadVoice);
  $("#align-form").addEventListener("submit", align);
  $("#voices-refresh").addEventListener("click", loadVoices);
  $$("input[name=mode]").forEach((radio) => radio.addEventListener("change", chooseMode));
  dropZone();
  chooseMode();
  try {
    const [models, voices] = await Promise.all([loadModels(), loadVoices()]);
    $("#status").textContent = `Ready: default model ${models.default}, ${voices.length} stored voice${voices.length === 1 ? "" : "s"}.`;
    document.body.dataset.ready = "true";
  } catch (error) {
    $("#status").textContent = `The endpoint cannot be reached: ${error.message}`;
    document.body.dataset.ready = "failed";
  }
}

// for automation and curious readers: what the page holds
window.f5page = {events, tracks, results};
document.addEventListener("DOMContentLoaded", start);
