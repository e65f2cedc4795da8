// Fetches a CT volume from the audited viewer endpoints and turns it into a Cornerstone
// local volume in the DICOM patient frame (LPS, mm).
import { cache, Enums, utilities, volumeLoader } from '@cornerstonejs/core';

/**
 * The volume description served by `records:study-volume-meta`:
 *   dimensions [ni, nj, nk] (columns, rows, slices), spacing [di, dj, dk] mm,
 *   direction: 9 numbers, the unit i, j and k axes in LPS one after the other,
 *   origin: LPS mm of voxel (0, 0, 0), dtype "<i2" (little-endian int16 HU),
 *   data_url: the voxels in C order of (k, j, i), i varying fastest.
 */
export async function fetchMeta(url) {
  const response = await fetch(url, { credentials: 'same-origin' });
  if (!response.ok) {
    throw new Error(await refusal(response, 'volume description'));
  }
  const meta = await response.json();
  if (meta.dtype !== '<i2') {
    throw new Error(`unsupported voxel type ${meta.dtype}`);
  }
  return meta;
}

/** Downloads the voxels, reporting progress (0..1) while the bytes arrive. */
export async function fetchVoxels(url, expectedBytes, onProgress = () => {}) {
  const response = await fetch(url, { credentials: 'same-origin' });
  if (!response.ok || !response.body) {
    throw new Error(await refusal(response, 'volume voxels'));
  }
  const buffer = new Uint8Array(expectedBytes);
  const reader = response.body.getReader();
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (received + value.length > expectedBytes) {
      throw new Error(`volume voxels: more than the expected ${expectedBytes} bytes`);
    }
    buffer.set(value, received);
    received += value.length;
    onProgress(received / expectedBytes);
  }
  if (received !== expectedBytes) {
    throw new Error(`volume voxels: got ${received} of ${expectedBytes} bytes`);
  }
  // int16 little-endian, as every browser platform is.
  return new Int16Array(buffer.buffer);
}

/** The server's one-line reason ({"detail": ...}) or the HTTP status. */
async function refusal(response, what) {
  try {
    const body = await response.json();
    if (body && typeof body.detail === 'string') return body.detail;
  } catch {
    // not JSON: fall through
  }
  return `${what}: HTTP ${response.status}`;
}

function cross(a, b) {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

function dot(a, b) {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

/**
 * Cornerstone expects a right-handed voxel frame (k along i x j). When the stored slice
 * order runs the other way, reverse the slices and move the origin to the last slice:
 * the voxels keep their LPS positions.
 */
export function rightHanded(meta, voxels) {
  const [ni, nj, nk] = meta.dimensions;
  const di = meta.direction.slice(0, 3);
  const dj = meta.direction.slice(3, 6);
  const dk = meta.direction.slice(6, 9);
  if (dot(cross(di, dj), dk) > 0 || nk < 2) {
    return { meta, voxels };
  }
  const sliceLength = ni * nj;
  const flipped = new Int16Array(voxels.length);
  for (let k = 0; k < nk; k += 1) {
    flipped.set(voxels.subarray(k * sliceLength, (k + 1) * sliceLength), (nk - 1 - k) * sliceLength);
  }
  const last = (nk - 1) * meta.spacing[2];
  const origin = meta.origin.map((value, axis) => value + last * dk[axis]);
  const direction = [...di, ...dj, ...dk.map((value) => -value)];
  return { meta: { ...meta, origin, direction }, voxels: flipped };
}

/** Creates (or returns the cached) Cornerstone volume of a study; resolves its volumeId. */
export function createVolume(volumeId, meta, voxels) {
  const existing = cache.getVolume(volumeId);
  if (existing) return existing;
  const handed = rightHanded(meta, voxels);
  const [ni, nj] = handed.meta.dimensions;
  const frameOfReferenceUID = `orthofuse-study-${meta.study_id}`;
  const volume = volumeLoader.createLocalVolume(volumeId, {
    dimensions: handed.meta.dimensions,
    spacing: handed.meta.spacing,
    origin: handed.meta.origin,
    direction: handed.meta.direction,
    scalarData: handed.voxels,
    metadata: {
      BitsAllocated: 16,
      BitsStored: 16,
      HighBit: 15,
      SamplesPerPixel: 1,
      PixelRepresentation: 1,
      PhotometricInterpretation: 'MONOCHROME2',
      Modality: meta.modality || 'CT',
      SeriesInstanceUID: meta.series_instance_uid || undefined,
      FrameOfReferenceUID: frameOfReferenceUID,
      ImageOrientationPatient: handed.meta.direction.slice(0, 6),
      PixelSpacing: [handed.meta.spacing[1], handed.meta.spacing[0]],
      Columns: ni,
      Rows: nj,
      voiLut: [{ windowWidth: 400, windowCenter: 40 }],
      VOILUTFunction: 'LINEAR',
    },
  });
  describeSlices(volume.imageIds, handed.meta, frameOfReferenceUID);
  return volume;
}

/**
 * createLocalVolume gives every slice image the volume origin; record each slice's own
 * position so that Cornerstone can match slices to camera positions.
 */
function describeSlices(imageIds, meta, frameOfReferenceUID) {
  const [ni, nj] = meta.dimensions;
  const [di, dj, dk] = meta.spacing;
  const rowCosines = meta.direction.slice(0, 3);
  const columnCosines = meta.direction.slice(3, 6);
  const normal = meta.direction.slice(6, 9);
  imageIds.forEach((imageId, k) => {
    utilities.genericMetadataProvider.add(imageId, {
      type: Enums.MetadataModules.IMAGE_PLANE,
      metadata: {
        frameOfReferenceUID,
        rows: nj,
        columns: ni,
        imageOrientationPatient: [...rowCosines, ...columnCosines],
        rowCosines,
        columnCosines,
        imagePositionPatient: meta.origin.map((value, axis) => value + k * dk * normal[axis]),
        pixelSpacing: [dj, di],
        rowPixelSpacing: dj,
        columnPixelSpacing: di,
        sliceThickness: dk,
      },
    });
  });
}
