// kseg demo page: runs an exported kseg .tflite file with MediaPipe Tasks' ImageSegmenter (the
// same C++ core as its Android and iOS APIs), entirely from files in this folder.
import { FilesetResolver, ImageSegmenter } from "./mediapipe/vision_bundle.mjs";

const $ = (id) => document.getElementById(id);
const view = $("view");
const ctx = view.getContext("2d");
const state = { segmenter: null, labels: [], palette: [], image: null, mask: null,
                width: 0, height: 0, mode: "IMAGE", stream: null, opacity: 0.55 };
window.kseg = { ready: false, error: null, result: null };

function status(text) { $("status").textContent = text; }

async function main() {
  const config = await (await fetch("demo.json")).json();
  state.palette = config.palette;
  document.title = `kseg demo: ${config.name}`;
  $("title").textContent = `kseg demo: ${config.name}`;
  $("subtitle").textContent = `${config.runtime}, running offline in this page` +
    (config.license ? ` · model licence: ${config.license}` : "");
  for (const m of config.models) {
    const option = document.createElement("option");
    option.value = m.file;
    option.textContent = `${m.mode} (${(m.size_bytes / 1048576).toFixed(1)} MiB)`;
    $("model").appendChild(option);
  }
  state.fileset = await FilesetResolver.forVisionTasks("./mediapipe/wasm");
  await loadModel(config.models[0].file);
  state.image = await loadImage(config.sample);
  segmentStill();
  status(`sample: ${config.sample_note}\nclass names from the file's embedded metadata`);
  window.kseg.ready = true;
}

async function loadModel(file) {
  const old = state.segmenter;
  state.segmenter = null;  // the webcam loop skips frames until the new one is ready
  if (old) old.close();
  state.segmenter = await ImageSegmenter.createFromOptions(state.fileset, {
    baseOptions: { modelAssetPath: file, delegate: "CPU" },
    runningMode: state.mode, outputCategoryMask: true, outputConfidenceMasks: false });
  state.labels = state.segmenter.getLabels();
  state.warm = false;
  window.kseg.labels = state.labels;
  window.kseg.model = file;
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`cannot load image ${src}`));
    img.src = src;
  });
}

function colourFor(k) {
  return state.palette[k] || [255, 255, 255];
}

function draw(source, width, height) {
  view.width = width;
  view.height = height;
  ctx.globalAlpha = 1;
  ctx.drawImage(source, 0, 0, width, height);
  if (!state.mask) return;
  const overlay = new ImageData(state.width, state.height);
  const counts = new Array(state.labels.length).fill(0);
  for (let i = 0; i < state.mask.length; i++) {
    const k = state.mask[i];
    counts[k] = (counts[k] || 0) + 1;
    const [r, g, b] = colourFor(k);
    overlay.data[4 * i] = r;
    overlay.data[4 * i + 1] = g;
    overlay.data[4 * i + 2] = b;
    overlay.data[4 * i + 3] = 255;
  }
  const layer = document.createElement("canvas");
  layer.width = state.width;
  layer.height = state.height;
  layer.getContext("2d").putImageData(overlay, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.globalAlpha = state.opacity;
  ctx.drawImage(layer, 0, 0, width, height);
  ctx.globalAlpha = 1;
  legend(counts, state.mask.length);
}

function legend(counts, total) {
  const list = $("legend");
  list.innerHTML = "";
  state.labels.forEach((name, k) => {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${colourFor(k).join(",")})`;
    const label = document.createElement("span");
    label.textContent = name;
    const share = document.createElement("span");
    share.className = "share";
    share.textContent = total ? `${(100 * (counts[k] || 0) / total).toFixed(1)} %` : "";
    item.append(swatch, label, share);
    list.appendChild(item);
  });
}

function keep(result, ms) {
  const mask = result.categoryMask;
  state.mask = mask.getAsUint8Array().slice();
  state.width = mask.width;
  state.height = mask.height;
  $("time").textContent = `${ms.toFixed(1)} ms per frame`;
  window.kseg.result = { width: state.width, height: state.height, ms,
                         mask: Array.from(state.mask), labels: state.labels };
  result.close();
}

function segmentStill() {
  const img = state.image;
  if (!state.warm) {  // the first call sets the graph up: keep it out of the timing
    state.segmenter.segment(img).close();
    state.warm = true;
  }
  const t0 = performance.now();
  const result = state.segmenter.segment(img);
  keep(result, performance.now() - t0);
  draw(img, img.naturalWidth, img.naturalHeight);
}

async function setMode(mode) {
  if (state.mode === mode) return;
  state.mode = mode;
  await state.segmenter.setOptions({ runningMode: mode });
}

async function showFile(file) {
  if (!file || !file.type.startsWith("image/")) return;
  await stopWebcam();
  state.image = await loadImage(URL.createObjectURL(file));
  segmentStill();
  status(`image: ${file.name}`);
}

async function startWebcam() {
  const video = $("video");
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: true });
  } catch (err) {
    status(`webcam not available: ${err.message}`);
    return;
  }
  video.srcObject = state.stream;
  await video.play();
  await setMode("VIDEO");
  $("webcam").textContent = "Stop webcam";
  const frame = () => {
    if (!state.stream) return;
    requestAnimationFrame(frame);
    if (!state.segmenter) return;  // a model is loading
    try {
      const t0 = performance.now();
      const result = state.segmenter.segmentForVideo(video, t0);
      keep(result, performance.now() - t0);
      draw(video, video.videoWidth, video.videoHeight);
    } catch (err) {
      status(`webcam frame skipped: ${err.message || err}`);
    }
  };
  requestAnimationFrame(frame);
}

async function stopWebcam() {
  if (!state.stream) return;
  state.stream.getTracks().forEach((t) => t.stop());
  state.stream = null;
  $("webcam").textContent = "Start webcam";
  await setMode("IMAGE");
}

$("file").addEventListener("change", (e) => showFile(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  showFile(e.dataTransfer.files[0]);
});
$("opacity").addEventListener("input", (e) => {
  state.opacity = Number(e.target.value);
  $("opacity-value").textContent = state.opacity.toFixed(2);
  if (!state.stream && state.image) draw(state.image, state.image.naturalWidth, state.image.naturalHeight);
});
$("model").addEventListener("change", async (e) => {
  status("loading model…");
  await loadModel(e.target.value);
  if (state.mode === "IMAGE" && state.image) segmentStill();
  status(`model: ${e.target.value}`);
});
$("webcam").addEventListener("click", () => (state.stream ? stopWebcam() : startWebcam()));
if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) $("webcam").disabled = true;

main().catch((err) => {
  window.kseg.error = String(err && err.stack || err);
  status(`error: ${err.message || err}`);
});
