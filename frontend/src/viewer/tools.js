// Tool group of the three CT views with OHIF-style mouse bindings:
// left drag = the selected primary tool (window/level by default), middle drag = pan,
// right drag = zoom, wheel = scroll through slices; crosshairs stay visible and draggable.
import {
  addTool,
  CrosshairsTool,
  Enums as ToolEnums,
  PanTool,
  StackScrollTool,
  SynchronizerManager,
  synchronizers,
  ToolGroupManager,
  WindowLevelTool,
  ZoomTool,
} from '@cornerstonejs/tools';

const { MouseBindings } = ToolEnums;

export const PRIMARY_TOOLS = {
  windowLevel: WindowLevelTool.toolName,
  pan: PanTool.toolName,
  zoom: ZoomTool.toolName,
  crosshairs: CrosshairsTool.toolName,
};

let toolsRegistered = false;

function registerTools() {
  if (toolsRegistered) return;
  for (const tool of [WindowLevelTool, PanTool, ZoomTool, StackScrollTool, CrosshairsTool]) {
    addTool(tool);
  }
  toolsRegistered = true;
}

const VIEW_COLOURS = {
  axial: 'rgb(232, 76, 61)',
  coronal: 'rgb(46, 204, 113)',
  sagittal: 'rgb(52, 152, 219)',
};

/** Creates the tool group and VOI synchroniser for the given viewports. */
export function setUpTools(groupId, renderingEngineId, views) {
  registerTools();
  const existing = ToolGroupManager.getToolGroup(groupId);
  if (existing) ToolGroupManager.destroyToolGroup(groupId);
  const group = ToolGroupManager.createToolGroup(groupId);
  const colourById = Object.fromEntries(views.map((view) => [view.viewportId, VIEW_COLOURS[view.name]]));

  group.addTool(WindowLevelTool.toolName);
  group.addTool(PanTool.toolName);
  group.addTool(ZoomTool.toolName);
  group.addTool(StackScrollTool.toolName);
  group.addTool(CrosshairsTool.toolName, {
    getReferenceLineColor: (viewportId) => colourById[viewportId] || 'rgb(255, 255, 0)',
    getReferenceLineControllable: () => true,
    // Must be true for click-to-jump; also lets the lines be rotated (oblique MPR) as in OHIF.
    getReferenceLineDraggableRotatable: () => true,
    getReferenceLineSlabThicknessControlsOn: () => false,
  });
  for (const view of views) group.addViewport(view.viewportId, renderingEngineId);

  group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] });
  group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] });
  group.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: MouseBindings.Wheel }] });
  group.setToolPassive(CrosshairsTool.toolName);
  group.setToolActive(WindowLevelTool.toolName, {
    bindings: [{ mouseButton: MouseBindings.Primary }],
  });

  const syncId = `${groupId}-voi`;
  if (SynchronizerManager.getSynchronizer(syncId)) SynchronizerManager.destroySynchronizer(syncId);
  const voiSync = synchronizers.createVOISynchronizer(syncId, {
    syncInvertState: true,
    syncColormap: false,
  });
  for (const view of views) {
    voiSync.add({ renderingEngineId, viewportId: view.viewportId });
  }
  return { group, voiSync };
}

/** Binds `toolName` to the left mouse button; the previous primary tool keeps its other bindings. */
export function setPrimaryTool(group, toolName) {
  const current = group.getActivePrimaryMouseButtonTool();
  if (current === toolName) return;
  if (current) {
    if (current === CrosshairsTool.toolName) {
      group.setToolPassive(current);
    } else if (current === PanTool.toolName) {
      group.setToolActive(current, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] });
    } else if (current === ZoomTool.toolName) {
      group.setToolActive(current, { bindings: [{ mouseButton: MouseBindings.Secondary }] });
    } else {
      group.setToolPassive(current);
    }
  }
  const extra = {
    [PanTool.toolName]: [{ mouseButton: MouseBindings.Auxiliary }],
    [ZoomTool.toolName]: [{ mouseButton: MouseBindings.Secondary }],
  }[toolName] || [];
  group.setToolActive(toolName, { bindings: [{ mouseButton: MouseBindings.Primary }, ...extra] });
}

export function resetCrosshairs(group) {
  const crosshairs = group.getToolInstance(CrosshairsTool.toolName);
  crosshairs?.resetCrosshairs?.();
}
