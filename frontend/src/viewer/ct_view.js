// The three-view CT viewer: axial, coronal and sagittal orthographic views of one volume.
import {
  Enums,
  RenderingEngine,
  setVolumesForViewports,
  utilities as csUtils,
} from '@cornerstonejs/core';

import { edgeLetters } from './orientation.js';
import { DEFAULT_PRESET_ID, presetById, voiRange, windowLevel } from './presets.js';
import { PRIMARY_TOOLS, resetCrosshairs, setPrimaryTool, setUpTools } from './tools.js';
import { createVolume, fetchMeta, fetchVoxels } from './volume_source.js';

const { ViewportType, OrientationAxis, Events } = Enums;

const VIEWS = [
  { name: 'axial', orientation: OrientationAxis.AXIAL },
  { name: 'coronal', orientation: OrientationAxis.CORONAL },
  { name: 'sagittal', orientation: OrientationAxis.SAGITTAL },
];

export class CtViewer {
  /**
   * `root` is the viewer's container element (templates/records/_ct_viewer.html) with
   * data-meta-url, data-data-url and data-study-id, and one [data-view=<name>] element
   * per view. `onState` is called whenever the observable state changes.
   */
  constructor(root, onState = () => {}) {
    this.root = root;
    this.onState = onState;
    this.studyId = root.dataset.studyId;
    const suffix = `${this.studyId}-${Math.random().toString(36).slice(2, 8)}`;
    this.renderingEngineId = `orthofuse-ct-${suffix}`;
    this.toolGroupId = `orthofuse-ct-tools-${suffix}`;
    // No "scheme:" prefix: Cornerstone would look for an image loader of that scheme.
    this.volumeId = `orthofuse-ct-study-${this.studyId}`;
    this.views = VIEWS.map((view) => ({
      ...view,
      viewportId: `ct-${view.name}-${suffix}`,
      element: root.querySelector(`[data-view="${view.name}"]`),
    }));
    this.activeViewName = 'axial';
    this.state = {
      ready: false,
      error: null,
      progress: 0,
      renderCount: 0,
      renderCounts: Object.fromEntries(VIEWS.map((view) => [view.name, 0])),
      preset: null,
      primaryTool: 'windowLevel',
      timings: null,
    };
  }

  _set(patch) {
    Object.assign(this.state, patch);
    this.onState(this.state);
  }

  async load() {
    try {
      const started = performance.now();
      const meta = await fetchMeta(this.root.dataset.metaUrl);
      this.meta = meta;
      const [ni, nj, nk] = meta.dimensions;
      const fetched = performance.now();
      const voxels = await fetchVoxels(this.root.dataset.dataUrl, ni * nj * nk * 2, (progress) =>
        this._set({ progress }),
      );
      const downloaded = performance.now();
      this.volume = createVolume(this.volumeId, meta, voxels);
      await this._display();
      const timings = {
        metaMs: fetched - started,
        voxelsMs: downloaded - fetched,
        displayMs: performance.now() - downloaded,
        bytes: voxels.byteLength,
      };
      this._set({ ready: true, progress: 1, timings });
      this.root.dispatchEvent(new CustomEvent('orthofuse:viewer-ready', { detail: { viewer: this } }));
    } catch (error) {
      console.error('CT viewer:', error);
      this._set({ error: String(error.message || error) });
      throw error;
    }
  }

  async _display() {
    this.engine = new RenderingEngine(this.renderingEngineId);
    this.engine.setViewports(
      this.views.map((view) => ({
        viewportId: view.viewportId,
        type: ViewportType.ORTHOGRAPHIC,
        element: view.element,
        defaultOptions: { orientation: view.orientation, background: [0, 0, 0] },
      })),
    );
    for (const view of this.views) {
      view.element.addEventListener(Events.IMAGE_RENDERED, () => {
        this.state.renderCounts[view.name] += 1;
        this._set({ renderCount: this.state.renderCount + 1 });
      });
      view.element.addEventListener(Events.CAMERA_MODIFIED, () => this._updateLabels());
      view.element.addEventListener(Events.VOI_MODIFIED, () => this._updateLabels());
      view.element.addEventListener('pointerenter', () => {
        this.activeViewName = view.name;
      });
      view.element.addEventListener('contextmenu', (event) => event.preventDefault());
    }
    const ids = this.views.map((view) => view.viewportId);
    await setVolumesForViewports(this.engine, [{ volumeId: this.volumeId }], ids);
    const { group } = setUpTools(this.toolGroupId, this.renderingEngineId, this.views);
    this.toolGroup = group;
    this.applyPreset(DEFAULT_PRESET_ID);
    this.engine.renderViewports(ids);
    this._resizeObserver = new ResizeObserver(() => this.resize());
    this._resizeObserver.observe(this.root);
  }

  viewport(name = this.activeViewName) {
    const view = this.views.find((item) => item.name === name);
    return this.engine?.getViewport(view.viewportId);
  }

  resize() {
    if (!this.engine) return;
    this.engine.resize(true, false);
    this.engine.render();
  }

  /** Applies a preset (see presets.js) to all three views. */
  applyPreset(id) {
    const preset = presetById(id);
    if (!preset || !this.engine) return;
    this.setVoi(preset.window, preset.level);
    this._set({ preset: preset.id });
  }

  setVoi(window, level) {
    for (const view of this.views) {
      const viewport = this.engine.getViewport(view.viewportId);
      viewport.setProperties({ voiRange: voiRange(window, level) });
      viewport.render();
    }
    this._updateLabels();
  }

  /** Window width and level (HU) of each view. */
  voi() {
    const out = {};
    for (const view of this.views) {
      const range = this.engine?.getViewport(view.viewportId)?.getProperties()?.voiRange;
      out[view.name] = range ? windowLevel(range) : null;
    }
    return out;
  }

  invert() {
    for (const view of this.views) {
      const viewport = this.engine.getViewport(view.viewportId);
      viewport.setProperties({ invert: !viewport.getProperties().invert });
      viewport.render();
    }
  }

  setPrimary(name) {
    const toolName = PRIMARY_TOOLS[name];
    if (!toolName || !this.toolGroup) return;
    setPrimaryTool(this.toolGroup, toolName);
    this._set({ primaryTool: name });
  }

  scroll(delta, name = this.activeViewName) {
    const viewport = this.viewport(name);
    if (!viewport) return;
    csUtils.scroll(viewport, { delta, volumeId: this.volumeId });
  }

  /**
   * Slice shown by a view as a stored voxel index: the volume axis closest to the view
   * normal (k for axial, j for coronal, i for sagittal on an axial CT), 0-based, with the
   * number of slices along it. Same numbering as the .npy on the server.
   */
  sliceInfo(name) {
    const viewport = this.viewport(name);
    if (!viewport || !this.meta) return null;
    const { focalPoint, viewPlaneNormal } = viewport.getCamera();
    const { direction, origin, spacing, dimensions } = this.meta;
    const axes = [direction.slice(0, 3), direction.slice(3, 6), direction.slice(6, 9)];
    const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
    const relative = focalPoint.map((value, axis) => value - origin[axis]);
    let best = 0;
    for (let axis = 1; axis < 3; axis += 1) {
      if (Math.abs(dot(viewPlaneNormal, axes[axis])) > Math.abs(dot(viewPlaneNormal, axes[best]))) {
        best = axis;
      }
    }
    const index = Math.round(dot(relative, axes[best]) / spacing[best]);
    return { index, count: dimensions[best], axis: 'ijk'[best] };
  }

  /** Camera of a view: parallel scale (zoom), focal point and view-plane normal (LPS). */
  camera(name) {
    const viewport = this.viewport(name);
    if (!viewport) return null;
    const { parallelScale, focalPoint, viewPlaneNormal } = viewport.getCamera();
    return { parallelScale, focalPoint: [...focalPoint], viewPlaneNormal: [...viewPlaneNormal] };
  }

  /** Moves every view's plane through `point` (LPS mm), keeping zoom and orientation. */
  centreOn(point) {
    if (!this.engine) return;
    for (const view of this.views) {
      const viewport = this.engine.getViewport(view.viewportId);
      const { focalPoint, position } = viewport.getCamera();
      const delta = point.map((value, axis) => value - focalPoint[axis]);
      viewport.setCamera({
        focalPoint: [...point],
        position: position.map((value, axis) => value + delta[axis]),
      });
      viewport.render();
    }
  }

  reset() {
    if (!this.engine) return;
    for (const view of this.views) {
      const viewport = this.engine.getViewport(view.viewportId);
      viewport.resetCamera();
    }
    if (this.toolGroup) resetCrosshairs(this.toolGroup);
    this.applyPreset(this.state.preset || DEFAULT_PRESET_ID);
    this.engine.render();
  }

  /** Orientation letters at the top and left edges of a view (e.g. axial: A, R). */
  orientation(name) {
    const viewport = this.viewport(name);
    return viewport ? edgeLetters(viewport.getCamera()) : null;
  }

  _updateLabels() {
    if (!this.engine) return;
    for (const view of this.views) {
      const letters = this.orientation(view.name);
      for (const edge of ['top', 'left']) {
        const marker = this.root.querySelector(`[data-orient="${view.name}-${edge}"]`);
        if (marker && letters) marker.textContent = letters[edge];
      }
      const label = this.root.querySelector(`[data-view-label="${view.name}"]`);
      if (!label) continue;
      const info = this.sliceInfo(view.name);
      const range = this.engine.getViewport(view.viewportId)?.getProperties()?.voiRange;
      const wl = range ? windowLevel(range) : null;
      const slice = info ? `${info.index + 1}/${info.count}` : '';
      const voiText = wl ? `W ${Math.round(wl.window)} L ${Math.round(wl.level)}` : '';
      label.textContent = [slice, voiText].filter(Boolean).join(' · ');
    }
  }

  destroy() {
    this._resizeObserver?.disconnect();
    this.engine?.destroy();
  }
}
