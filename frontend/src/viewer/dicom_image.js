// DICOM images through @cornerstonejs/dicom-image-loader (decode worker + WASM codecs),
// for 2-D displays such as X-rays. URLs must be same-origin and authenticated by cookie.
import { imageLoader } from '@cornerstonejs/core';

/** Loads (and caches) the first frame of the DICOM file at `url`. */
export function loadDicomImage(url) {
  const absolute = new URL(url, window.location.href).href;
  return imageLoader.loadAndCacheImage(`wadouri:${absolute}`);
}

/** Size and value statistics of a decoded DICOM image (modality LUT applied when the
 * loader pre-scales, as it does for CT). */
export async function dicomImageStats(url) {
  const image = await loadDicomImage(url);
  const pixels = image.voxelManager ? image.voxelManager.getScalarData() : image.getPixelData();
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (let index = 0; index < pixels.length; index += 1) {
    const value = pixels[index];
    if (value < min) min = value;
    if (value > max) max = value;
    sum += value;
  }
  return {
    rows: image.rows,
    columns: image.columns,
    min,
    max,
    mean: sum / pixels.length,
    preScaled: Boolean(image.preScale?.scaled),
    slope: image.slope,
    intercept: image.intercept,
  };
}
