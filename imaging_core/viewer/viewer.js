// ScanPath's image viewer: Cornerstone3D over ScanPath's own DICOMweb (QIDO-RS, WADO-RS).
//
// Bundled by `make static` (esbuild) into static/viewer/viewer.js; no CDN. The page
// (templates/staff/viewer.html) gives the study in data-study on #viewer; this module
// finds the study's largest CT series with QIDO-RS, reads its metadata with WADO-RS,
// and shows its frames in a Cornerstone stack viewport. Requests carry the staff
// session cookie (same origin); the DICOMweb GETs accept it in place of a token.
//
// Mouse: left drag window/level, middle drag pan, right drag zoom, wheel scroll.
// Keys (viewport focused): Up/Down or PageUp/PageDown scroll, Home/End first/last.
// When the first image is drawn, #viewer gets data-first-image="rendered"; the
// slice shown is in #slice-index (data-index, 1-based) for people and for tests.
import {
  Enums,
  RenderingEngine,
  getRenderingCapabilities,
  getShouldUseCPURendering,
  init as initCore,
  metaData,
  setUseCPURendering,
  utilities,
} from '@cornerstonejs/core';
import {
  Enums as ToolEnums,
  PanTool,
  StackScrollTool,
  ToolGroupManager,
  WindowLevelTool,
  ZoomTool,
  addTool,
  init as initTools,
  utilities as toolUtilities,
} from '@cornerstonejs/tools';
import { init as initLoader, wadors } from '@cornerstonejs/dicom-image-loader';

const ENGINE_ID = 'scanpath-engine';
const VIEWPORT_ID = 'scanpath-stack';
const TOOL_GROUP_ID = 'scanpath-tools';
const STEP = { ArrowUp: -1, ArrowDown: 1, PageUp: -10, PageDown: 10 };

async function dicomJson(url) {
  const response = await fetch(url, {
    headers: { Accept: 'application/dicom+json' },
    credentials: 'same-origin',
  });
  if (!response.ok) {
    throw new Error(`${url}: HTTP ${response.status}`);
  }
  return response.json();
}

function value(item, tag) {
  const element = item[tag];
  return element && element.Value ? element.Value[0] : undefined;
}

// The series to show: the CT series with the most instances (the thin axial series).
async function chooseSeries(study) {
  const series = await dicomJson(`/dicomweb/studies/${study}/series`);
  const images = series.filter((s) => value(s, '00080060') === 'CT');
  if (!images.length) {
    throw new Error('The study holds no CT series');
  }
  images.sort((a, b) => (value(b, '00201209') || 0) - (value(a, '00201209') || 0));
  return value(images[0], '0020000E');
}

// Slices in Instance Number order, as the page without JavaScript shows them
// (imaging_core.studies.instances), so that "slice N" is the same slice in both.
function sortedInstances(instances) {
  const number = (i) => Number(value(i, '00200013') || 0);
  return [...instances].sort((a, b) => number(a) - number(b));
}

async function imageIdsOf(study, series) {
  const base = `${window.location.origin}/dicomweb/studies/${study}/series/${series}`;
  const instances = sortedInstances(await dicomJson(`${base}/metadata`));
  return instances.map((instance) => {
    const imageId = `wadors:${base}/instances/${value(instance, '00080018')}/frames/1`;
    wadors.metaDataManager.add(imageId, instance);
    return imageId;
  });
}

function setUpTools(viewport) {
  [WindowLevelTool, PanTool, ZoomTool, StackScrollTool].forEach((tool) => addTool(tool));
  const group = ToolGroupManager.createToolGroup(TOOL_GROUP_ID);
  const { MouseBindings } = ToolEnums;
  group.addTool(WindowLevelTool.toolName);
  group.addTool(PanTool.toolName);
  group.addTool(ZoomTool.toolName);
  group.addTool(StackScrollTool.toolName);
  group.setToolActive(WindowLevelTool.toolName, { bindings: [{ mouseButton: MouseBindings.Primary }] });
  group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] });
  group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] });
  group.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: MouseBindings.Wheel }] });
  group.addViewport(viewport.id, ENGINE_ID);
}

function showIndex(viewport, total) {
  const index = viewport.getCurrentImageIdIndex() + 1;
  const label = document.getElementById('slice-index');
  label.dataset.index = String(index);
  label.textContent = `Slice ${index} of ${total}`;
}

function scrollBy(viewport, step, total) {
  const target = Math.min(total - 1, Math.max(0, viewport.getCurrentImageIdIndex() + step));
  viewport.setImageIdIndex(target);
}

function onKeys(element, viewport, total) {
  element.addEventListener('keydown', (event) => {
    if (event.key in STEP) {
      scrollBy(viewport, STEP[event.key], total);
    } else if (event.key === 'Home' || event.key === 'End') {
      viewport.setImageIdIndex(event.key === 'Home' ? 0 : total - 1);
    } else {
      return;
    }
    event.preventDefault();
  });
}

// Preset buttons carry data-center and data-width (Hounsfield units).
function onPresets(viewport) {
  document.querySelectorAll('[data-preset]').forEach((button) => {
    button.addEventListener('click', (event) => {
      event.preventDefault();
      const center = Number(button.dataset.center);
      const width = Number(button.dataset.width);
      viewport.setProperties({ voiRange: { lower: center - width / 2, upper: center + width / 2 } });
      viewport.render();
      document.getElementById('viewer').dataset.window = `${center},${width}`;
    });
  });
}

function onRendered(element, viewport, total) {
  const container = document.getElementById('viewer');
  element.addEventListener(Enums.Events.IMAGE_RENDERED, () => {
    if (!container.dataset.firstImage) {
      container.dataset.firstImage = 'rendered';
      container.dataset.renderer = getShouldUseCPURendering() ? 'cpu' : 'webgl';
      window.performance.mark('scanpath-first-image');
    }
    showIndex(viewport, total);
  });
}

// The calcium overlay from the study's SEG (/staff/studies/{study}/overlay.json):
// each segment pixel of the slice shown, filled over the image on a canvas of our own.
// #viewer gets data-overlay-pixels, the number of pixels drawn on the slice shown.
const OVERLAY_COLOUR = 'rgba(255, 40, 40, 0.55)';

async function loadOverlay(study) {
  const response = await fetch(`/staff/studies/${study}/overlay.json`, { credentials: 'same-origin' });
  return response.ok ? response.json() : null;
}

function sopOf(imageId) {
  return imageId.split('/instances/')[1].split('/')[0];
}

function drawOverlay(canvas, viewport, overlay, visible) {
  const context = canvas.getContext('2d');
  canvas.width = canvas.clientWidth;
  canvas.height = canvas.clientHeight;
  context.clearRect(0, 0, canvas.width, canvas.height);
  const imageId = viewport.getCurrentImageId();
  const pixels = (overlay.slices[sopOf(imageId)] || []);
  document.getElementById('viewer').dataset.overlayPixels = String(visible ? pixels.length : 0);
  if (!visible) {
    return;
  }
  const toCanvas = (row, column) => viewport.worldToCanvas(
    utilities.imageToWorldCoords(imageId, [column, row]));
  context.fillStyle = OVERLAY_COLOUR;
  pixels.forEach(([, row, column]) => {
    const [x0, y0] = toCanvas(row, column);
    const [x1, y1] = toCanvas(row + 1, column + 1);
    context.fillRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
  });
}

function setUpOverlay(element, viewport, overlay) {
  const canvas = document.createElement('canvas');
  canvas.className = 'sp-overlay';
  canvas.setAttribute('aria-hidden', 'true');
  element.appendChild(canvas);
  const toggle = document.getElementById('overlay-toggle');
  const draw = () => drawOverlay(canvas, viewport, overlay, !toggle || toggle.checked);
  element.addEventListener(Enums.Events.IMAGE_RENDERED, draw);
  if (toggle) {
    toggle.addEventListener('change', draw);
  }
  draw();
}

function fail(error) {
  const status = document.getElementById('viewer-status');
  status.hidden = false;
  status.textContent = `The viewer could not load the images: ${error.message}. ` +
    'The rendered slices below still work.';
  document.getElementById('viewer').dataset.error = error.message;
}

async function start() {
  const container = document.getElementById('viewer');
  const element = document.getElementById('viewport');
  container.hidden = false;
  initCore();
  // A software WebGL rasterizer (SwiftShader, llvmpipe: a machine or VM with no GPU)
  // draws a 512 x 512 slice slower than Cornerstone's CPU (canvas 2D) path does.
  if (getRenderingCapabilities().softwareRasterizer) {
    setUseCPURendering(true);
  }
  initTools();
  initLoader({ maxWebWorkers: 1 });
  // The series' instances carry everything the stack needs; the loader's provider
  // reads it from the WADO-RS metadata added above.
  metaData.addProvider(wadors.metaData.metaDataProvider, 10000);
  const study = container.dataset.study;
  const imageIds = await imageIdsOf(study, await chooseSeries(study));
  const engine = new RenderingEngine(ENGINE_ID);
  engine.enableElement({ viewportId: VIEWPORT_ID, type: Enums.ViewportType.STACK, element });
  const viewport = engine.getViewport(VIEWPORT_ID);
  onRendered(element, viewport, imageIds.length);
  setUpTools(viewport);
  onKeys(element, viewport, imageIds.length);
  onPresets(viewport);
  element.addEventListener('contextmenu', (event) => event.preventDefault());
  container.dataset.slices = String(imageIds.length);
  const overlay = loadOverlay(study);
  await viewport.setStack(imageIds, 0);
  viewport.render();
  const segmentation = await overlay;
  if (segmentation) {
    setUpOverlay(element, viewport, segmentation);
  }
  // Fetch the rest of the series in the background, nearest slices first, so that
  // scrolling does not wait on the network for each slice.
  toolUtilities.stackPrefetch.enable(element);
}

if (document.getElementById('viewer')) {
  document.documentElement.classList.add('js-viewer');
  start().catch(fail);
}
