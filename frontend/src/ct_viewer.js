// Entry point of static/dist/ct_viewer.js: mounts a CtViewer on every [data-ct-viewer]
// element (templates/records/_ct_viewer.html) and wires its toolbar.
//
// Extension API for other pages (planning overlays): the root element dispatches
// "orthofuse:viewer-ready" with detail.viewer, a CtViewer whose stable members are
// views [{name, viewportId, element}], engine (Cornerstone RenderingEngine),
// viewport(name), centreOn([x, y, z] LPS mm), applyPreset(id), voi(), reset().
//
// 2-D DICOM images (X-rays): elements [data-dicom-image][data-url] are shown in a stack
// viewport (window/level, pan, zoom); window.orthofuse.mountDicomImage(element, url) does
// the same from script.
//
// Test hook: window.orthofuseViewer = { ready, error, progress, renderCount, renderCounts,
// preset, primaryTool, timings, voi(), applyPreset(id), setPrimary(name), scroll(delta, view),
// sliceInfo(view), camera(view), orientation(view), centreOn(point), reset(), decodeDicom(url), viewer }.
import { dicomImageStats } from './viewer/dicom_image.js';
import { mountDicomImage } from './viewer/dicom_view.js';
import { HOTKEY_HELP, installHotkeys } from './viewer/hotkeys.js';
import { initCornerstone } from './viewer/init.js';
import { CtViewer } from './viewer/ct_view.js';

const distUrl = new URL('./', import.meta.url).href;

function publishHook(viewer) {
  const hook = {
    viewer,
    get ready() {
      return viewer.state.ready;
    },
    get error() {
      return viewer.state.error;
    },
    get progress() {
      return viewer.state.progress;
    },
    get renderCount() {
      return viewer.state.renderCount;
    },
    get renderCounts() {
      return { ...viewer.state.renderCounts };
    },
    get preset() {
      return viewer.state.preset;
    },
    get primaryTool() {
      return viewer.state.primaryTool;
    },
    get timings() {
      return viewer.state.timings;
    },
    voi: () => viewer.voi(),
    applyPreset: (id) => viewer.applyPreset(id),
    setPrimary: (name) => viewer.setPrimary(name),
    scroll: (delta, view) => viewer.scroll(delta, view),
    sliceInfo: (view) => viewer.sliceInfo(view),
    camera: (view) => viewer.camera(view),
    orientation: (view) => viewer.orientation(view),
    centreOn: (point) => viewer.centreOn(point),
    reset: () => viewer.reset(),
    // Decodes a DICOM file with the DICOM image loader (worker + WASM codecs).
    decodeDicom: (url) => dicomImageStats(url),
  };
  window.orthofuseViewer = hook;
}

function wireToolbar(root, viewer) {
  const status = root.querySelector('[data-viewer-status]');
  const presetButtons = root.querySelectorAll('[data-preset]');
  const toolButtons = root.querySelectorAll('[data-tool]');
  const sync = (state) => {
    for (const button of presetButtons) {
      button.setAttribute('aria-pressed', String(button.dataset.preset === state.preset));
    }
    for (const button of toolButtons) {
      button.setAttribute('aria-pressed', String(button.dataset.tool === state.primaryTool));
    }
    if (status) {
      if (state.error) status.textContent = `Could not display the CT: ${state.error}`;
      else if (!state.ready) status.textContent = `Loading CT… ${Math.round(state.progress * 100)}%`;
      else status.textContent = '';
    }
    root.dataset.state = state.error ? 'error' : state.ready ? 'ready' : 'loading';
  };
  viewer.onState = sync;
  sync(viewer.state);
  for (const button of presetButtons) {
    button.addEventListener('click', () => viewer.applyPreset(button.dataset.preset));
  }
  for (const button of toolButtons) {
    button.addEventListener('click', () => viewer.setPrimary(button.dataset.tool));
  }
  root.querySelector('[data-action="reset"]')?.addEventListener('click', () => viewer.reset());
  root.querySelector('[data-action="invert"]')?.addEventListener('click', () => viewer.invert());
  const help = root.querySelector('[data-hotkey-help]');
  if (help && !help.childElementCount) {
    for (const [key, text] of HOTKEY_HELP) {
      const item = document.createElement('li');
      const kbd = document.createElement('kbd');
      kbd.textContent = key;
      item.append(kbd, ` ${text}`);
      help.append(item);
    }
  }
}

async function mount(root) {
  const viewer = new CtViewer(root);
  wireToolbar(root, viewer);
  publishHook(viewer);
  installHotkeys(viewer, root);
  try {
    initCornerstone(distUrl);
    await viewer.load();
  } catch (error) {
    viewer._set({ error: String(error.message || error) });
  }
}

for (const root of document.querySelectorAll('[data-ct-viewer]')) {
  mount(root);
}

// 2-D DICOM images: <div data-dicom-image data-url="..." style="height: ..."></div>.
function mountImage(element, url = element.dataset.url) {
  initCornerstone(distUrl);
  return mountDicomImage(element, url);
}

for (const element of document.querySelectorAll('[data-dicom-image]')) {
  mountImage(element).catch((error) => console.error('DICOM image:', error));
}

window.orthofuse = { mountDicomImage: mountImage };
