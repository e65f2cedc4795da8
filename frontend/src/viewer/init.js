// One-time initialisation of Cornerstone3D core, tools and the DICOM image loader.
import { init as initCore } from '@cornerstonejs/core';
import { init as initDicomImageLoader } from '@cornerstonejs/dicom-image-loader';
import { init as initTools } from '@cornerstonejs/tools';

let initialised = false;

/**
 * `distUrl` is the URL of static/dist/ (with a trailing slash): the DICOM loader's decode
 * worker lies next to the bundle and its WASM codecs under `codecs/`.
 */
export function initCornerstone(distUrl) {
  if (initialised) return;
  initCore();
  initTools();
  initDicomImageLoader({
    maxWebWorkers: Math.max(1, Math.min(2, navigator.hardwareConcurrency || 1)),
    wasmBasePath: `${distUrl}codecs/`,
  });
  initialised = true;
}
