// Trajectories in the CT viewer (templates/records/_ct_viewer.html, Cornerstone3D) when
// both views are registered to the CT: the axial/coronal/sagittal views are centred on
// the active trajectory and every complete trajectory is drawn over them (LPS mm ->
// canvas through each viewport's worldToCanvas).
const root = document.querySelector('[data-ct-viewer]');
const state = { overlays: new Map(), drawn: 0, centred: false };

function viewer() { return window.orthofuseViewer?.ready ? window.orthofuseViewer.viewer : null; }

function trajectories() {
  const app = window.planningApp;
  if (!app) return [];
  return app.state.trajectories
    .map((t, index) => ({ t, c: app.computed(t), index }))
    .filter((item) => item.c.complete);
}

function overlayFor(view, viewport) {
  let canvas = state.overlays.get(view.name);
  if (!canvas) {
    canvas = document.createElement('canvas');
    canvas.className = 'pl-ct-overlay';
    canvas.dataset.view = view.name;
    view.element.appendChild(canvas);
    state.overlays.set(view.name, canvas);
  }
  const ref = viewport.canvas || view.element;
  const w = ref.clientWidth || view.element.clientWidth, h = ref.clientHeight || view.element.clientHeight;
  canvas.style.width = `${w}px`;
  canvas.style.height = `${h}px`;
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  return canvas;
}

function draw() {
  const v = viewer();
  if (!v) return;
  const items = trajectories();
  let drawn = 0;
  for (const view of v.views) {
    const viewport = v.engine.getViewport(view.viewportId);
    if (!viewport) continue;
    const canvas = overlayFor(view, viewport);
    if (!canvas.width || !canvas.height) continue;
    const g = canvas.getContext('2d');
    g.clearRect(0, 0, canvas.width, canvas.height);
    for (const { t, c, index } of items) {
      const a = viewport.worldToCanvas(c.entry);
      const b = viewport.worldToCanvas(c.target);
      g.strokeStyle = t.colour;
      g.lineWidth = index === window.planningApp.state.active ? 3 : 2;
      g.beginPath(); g.moveTo(a[0], a[1]); g.lineTo(b[0], b[1]); g.stroke();
      g.fillStyle = t.colour;
      g.beginPath(); g.arc(a[0], a[1], 4, 0, 2 * Math.PI); g.fill();
      drawn += 1;
    }
  }
  state.drawn = drawn;
}

/** Move all three views so their planes pass through the active trajectory's midpoint. */
function centre() {
  const v = viewer();
  if (!v) return false;
  const items = trajectories();
  const active = items.find((item) => item.index === window.planningApp.state.active) || items[0];
  if (!active) return false;
  const mid = [0, 1, 2].map((k) => (active.c.entry[k] + active.c.target[k]) / 2);
  for (const view of v.views) {
    const viewport = v.engine.getViewport(view.viewportId);
    const cam = viewport.getCamera();
    const delta = [0, 1, 2].map((k) => mid[k] - cam.focalPoint[k]);
    viewport.setCamera({ focalPoint: mid, position: cam.position.map((p, k) => p + delta[k]) });
    viewport.render();
  }
  state.centred = true;
  draw();
  return true;
}

function hook() {
  const v = viewer();
  if (!v) { setTimeout(hook, 250); return; }
  for (const view of v.views) {
    view.element.addEventListener('CORNERSTONE_IMAGE_RENDERED', draw);
  }
  centre();
  draw();
}

if (root) {
  document.getElementById('ct-centre')?.addEventListener('click', centre);
  hook();
}

window.PlanningCT = {
  update() { if (!state.centred) centre(); draw(); },
  centre,
  get drawn() { return state.drawn; },
};
