// A single DICOM image (e.g. an X-ray) in a Cornerstone stack viewport, decoded by the
// DICOM image loader. Left drag = window/level, middle drag = pan, right drag = zoom,
// double-click or R = reset. Mount with mountDicomImage(element, url).
import { Enums, RenderingEngine } from '@cornerstonejs/core';
import {
  addTool,
  Enums as ToolEnums,
  PanTool,
  ToolGroupManager,
  WindowLevelTool,
  ZoomTool,
} from '@cornerstonejs/tools';

const { MouseBindings } = ToolEnums;
let counter = 0;

/**
 * Shows the DICOM file at `url` (same origin, cookie-authenticated) in `element`, which
 * must have a size. Resolves {engine, viewport, reset()} once the image is drawn; sets
 * element.dataset.state to "ready" (or "error" with data-error).
 */
export async function mountDicomImage(element, url) {
  counter += 1;
  const id = `orthofuse-dicom-${counter}`;
  const viewportId = `${id}-viewport`;
  element.dataset.state = 'loading';
  element.addEventListener('contextmenu', (event) => event.preventDefault());
  try {
    const engine = new RenderingEngine(id);
    engine.enableElement({
      viewportId,
      type: Enums.ViewportType.STACK,
      element,
      defaultOptions: { background: [0, 0, 0] },
    });
    const viewport = engine.getViewport(viewportId);
    const absolute = new URL(url, window.location.href).href;
    await viewport.setStack([`wadouri:${absolute}`]);
    for (const Tool of [WindowLevelTool, PanTool, ZoomTool]) addTool(Tool);
    const group = ToolGroupManager.createToolGroup(`${id}-tools`);
    group.addTool(WindowLevelTool.toolName);
    group.addTool(PanTool.toolName);
    group.addTool(ZoomTool.toolName);
    group.addViewport(viewportId, id);
    group.setToolActive(WindowLevelTool.toolName, {
      bindings: [{ mouseButton: MouseBindings.Primary }],
    });
    group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] });
    group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] });
    const reset = () => {
      viewport.resetCamera();
      viewport.resetProperties();
      viewport.render();
    };
    element.addEventListener('dblclick', reset);
    new ResizeObserver(() => {
      engine.resize(true, false);
    }).observe(element);
    viewport.render();
    element.dataset.state = 'ready';
    return { engine, viewport, reset };
  } catch (error) {
    element.dataset.state = 'error';
    element.dataset.error = String(error?.message || error);
    throw error;
  }
}
