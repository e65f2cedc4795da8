// Two-view trajectory planning page (plain ES module).
//
// View 1 picks are free; each view 2 pick is constrained to (snapped onto) the epipolar
// line of the matching view 1 pick. Every change re-triangulates live. Saving posts the
// picks; the server recomputes everything with the Python engine and stores a version.
import * as G from './planning_geometry.js';

const ctx = JSON.parse(document.getElementById('planning-context').textContent);
const COLOURS = ['#ff8800', '#00b4ff', '#e040fb', '#35d04a', '#ffd600', '#ff4d4d'];
const ENDS = ['entry', 'target'];
const HANDLE_PX = 9;
const geometry = ctx.geometry;
const views = geometry.views;
const registered = geometry.world_frame === 'ct';
const readOnly = !ctx.can_edit;

const state = {
  trajectories: [],
  active: -1,
  tool: null,
  dirty: false,
  postop: ctx.mode === 'postop',
};

function cloneTrajectories(list) {
  return (list || []).map((t) => ({
    name: t.name,
    colour: t.colour,
    diameter_mm: t.diameter_mm,
    length_mm: t.length_mm,
    picks: {
      entry: { view1: t.picks?.entry?.view1 || null, view2: t.picks?.entry?.view2 || null },
      target: { view1: t.picks?.target?.view1 || null, view2: t.picks?.target?.view2 || null },
    },
  }));
}

// ------------------------------------------------------------------ image panels
class Panel {
  constructor(index, root) {
    this.index = index;
    this.view = views[index];
    this.root = root;
    this.canvas = root.querySelector('canvas');
    this.g = this.canvas.getContext('2d');
    this.scale = 1;
    this.offset = [0, 0];
    this.window = 255;
    this.level = 127.5;
    this.raw = null;
    this.off = document.createElement('canvas');
    this.ready = false;
  }

  async load(url) {
    const img = new Image();
    img.decoding = 'async';
    img.src = url;
    await img.decode();
    this.off.width = img.naturalWidth;
    this.off.height = img.naturalHeight;
    const og = this.off.getContext('2d');
    og.drawImage(img, 0, 0);
    this.raw = og.getImageData(0, 0, img.naturalWidth, img.naturalHeight);
    this.applyWindow();
    this.resize();
    this.fit();
    this.ready = true;
  }

  applyWindow() {
    if (!this.raw) return;
    const lut = new Uint8ClampedArray(256);
    const lo = this.level - this.window / 2;
    for (let i = 0; i < 256; i++) lut[i] = ((i - lo) * 255) / Math.max(this.window, 1);
    const out = new ImageData(this.raw.width, this.raw.height);
    const src = this.raw.data, dst = out.data;
    for (let p = 0; p < src.length; p += 4) {
      const v = lut[src[p]];
      dst[p] = v; dst[p + 1] = v; dst[p + 2] = v; dst[p + 3] = 255;
    }
    this.off.getContext('2d').putImageData(out, 0, 0);
  }

  resize() {
    const rect = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    this.dpr = dpr;
    this.canvas.width = Math.max(1, Math.round(rect.width * dpr));
    this.canvas.height = Math.max(1, Math.round(rect.height * dpr));
  }

  fit() {
    const w = this.canvas.width / this.dpr, h = this.canvas.height / this.dpr;
    this.scale = Math.min(w / this.view.width, h / this.view.height);
    this.offset = [(w - this.view.width * this.scale) / 2, (h - this.view.height * this.scale) / 2];
  }

  // image pixel (u, v) -> CSS px inside the canvas (pixel centres at integer u, v)
  toScreen(uv) { return [(uv[0] + 0.5) * this.scale + this.offset[0], (uv[1] + 0.5) * this.scale + this.offset[1]]; }
  toImage(xy) { return [(xy[0] - this.offset[0]) / this.scale - 0.5, (xy[1] - this.offset[1]) / this.scale - 0.5]; }

  eventXY(ev) {
    const rect = this.canvas.getBoundingClientRect();
    return [ev.clientX - rect.left, ev.clientY - rect.top];
  }

  draw() {
    const g = this.g;
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.fillStyle = '#000';
    g.fillRect(0, 0, this.canvas.width, this.canvas.height);
    g.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    g.save();
    g.translate(this.offset[0], this.offset[1]);
    g.scale(this.scale, this.scale);
    g.imageSmoothingEnabled = this.scale < 1;
    g.drawImage(this.off, 0, 0);
    g.restore();
    drawOverlay(this);
  }
}

const panels = [0, 1].map((i) => new Panel(i, document.getElementById(`view${i + 1}`)));
const key = (i) => `view${i + 1}`;

// ------------------------------------------------------------------ derived data
function computed(t) {
  const out = { complete: false };
  const [v1, v2] = views;
  for (const end of ENDS) {
    const p = t.picks[end];
    if (p.view1 && p.view2) {
      const r = G.triangulate(v1, p.view1, v2, p.view2);
      if (r) { out[end] = r.point; out[`${end}Gap`] = r.gap; }
    }
  }
  if (out.entry && out.target) {
    out.complete = true;
    out.length = G.vec.norm(G.vec.sub(out.target, out.entry));
    out.angles = [0, 1].map((i) => G.imageAngle(G.project(views[i], out.entry), G.project(views[i], out.target)));
    if (out.length > 1e-6) out.anatomical = G.anatomicalAngles(out.entry, out.target);
  }
  return out;
}

function resnap(t) {
  for (const end of ENDS) {
    const p = t.picks[end];
    if (p.view1 && p.view2) p.view2 = G.snapToLine(p.view2, G.epipolarLine(views[0], p.view1, views[1]));
  }
}

// ------------------------------------------------------------------ drawing
function line(g, a, b, colour, width, dash) {
  g.save();
  g.strokeStyle = colour; g.lineWidth = width; g.setLineDash(dash || []);
  g.beginPath(); g.moveTo(a[0], a[1]); g.lineTo(b[0], b[1]); g.stroke();
  g.restore();
}

function drawOverlay(panel) {
  const g = panel.g;
  const i = panel.index;
  state.trajectories.forEach((t, ti) => {
    const activeT = ti === state.active;
    const picks = ENDS.map((end) => t.picks[end][key(i)]);
    // epipolar lines of the view 1 picks, in view 2
    if (i === 1 && activeT) {
      ENDS.forEach((end, ei) => {
        const p1 = t.picks[end].view1;
        if (!p1) return;
        const seg = G.clipLine(G.epipolarLine(views[0], p1, views[1]), views[1].width, views[1].height);
        if (seg) line(g, panel.toScreen(seg[0]), panel.toScreen(seg[1]), t.colour, 1, ei === 0 ? [8, 4] : [2, 4]);
      });
    }
    if (picks[0] && picks[1]) {
      const c = computed(t);
      let width = 2;
      if (c.complete) {
        const mid = G.vec.scale(G.vec.add(c.entry, c.target), 0.5);
        const z = G.depth(views[i], mid);
        width = Math.max(2, (t.diameter_mm * views[i].K[0][0] / z) * panel.scale);
      }
      g.save(); g.globalAlpha = 0.35;
      line(g, panel.toScreen(picks[0]), panel.toScreen(picks[1]), t.colour, width);
      g.restore();
      line(g, panel.toScreen(picks[0]), panel.toScreen(picks[1]), t.colour, activeT ? 2 : 1);
    }
    ENDS.forEach((end, ei) => {
      const p = picks[ei];
      if (!p) return;
      const s = panel.toScreen(p);
      g.save();
      g.strokeStyle = t.colour; g.fillStyle = ei === 0 ? t.colour : '#000'; g.lineWidth = 2;
      g.beginPath(); g.arc(s[0], s[1], activeT ? 6 : 4, 0, 2 * Math.PI); g.fill(); g.stroke();
      g.fillStyle = t.colour; g.font = '12px sans-serif';
      g.fillText(`${t.name} ${end === 'entry' ? 'E' : 'T'}`, s[0] + 8, s[1] - 8);
      g.restore();
    });
  });
  const tool = state.tool;
  if (tool && tool.views && tool.views[i] && tool.views[i].visible) {
    const tv = tool.views[i];
    line(g, panel.toScreen(tv.tail), panel.toScreen(tv.tip), '#00ff66', 3);
    line(g, panel.toScreen(tv.tip), panel.toScreen(tv.extension), '#00ff66', 2, [6, 4]);
    const s = panel.toScreen(tv.tip);
    g.save(); g.fillStyle = '#00ff66'; g.beginPath(); g.arc(s[0], s[1], 4, 0, 2 * Math.PI); g.fill(); g.restore();
  }
}

function redraw() {
  panels.forEach((p) => p.ready && p.draw());
  renderReadouts();
}

// ------------------------------------------------------------------ interaction
function nearestHandle(panel, xy) {
  let best = null;
  state.trajectories.forEach((t, ti) => {
    ENDS.forEach((end) => {
      const p = t.picks[end][key(panel.index)];
      if (!p) return;
      const s = panel.toScreen(p);
      const d = Math.hypot(s[0] - xy[0], s[1] - xy[1]);
      if (d <= HANDLE_PX && (!best || d < best.d)) best = { ti, end, d };
    });
  });
  return best;
}

function placePick(panelIndex, uv) {
  if (readOnly) return;
  if (state.active < 0) addTrajectory();
  const t = state.trajectories[state.active];
  const k = key(panelIndex);
  const end = ENDS.find((e) => !t.picks[e][k]);
  if (!end) return; // both ends picked in this view: drag them instead
  setPick(t, end, panelIndex, uv);
}

function setPick(t, end, panelIndex, uv) {
  if (panelIndex === 0) {
    t.picks[end].view1 = uv;
    resnap(t);
  } else {
    const p1 = t.picks[end].view1;
    t.picks[end].view2 = p1 ? G.snapToLine(uv, G.epipolarLine(views[0], p1, views[1])) : uv;
  }
  state.dirty = true;
  redraw();
}

panels.forEach((panel) => {
  const c = panel.canvas;
  let drag = null;
  c.addEventListener('contextmenu', (ev) => ev.preventDefault());
  c.addEventListener('mousedown', (ev) => {
    const xy = panel.eventXY(ev);
    if (ev.button === 2) {
      drag = { mode: 'wl', start: xy, window: panel.window, level: panel.level };
    } else if (ev.button === 0) {
      const h = readOnly ? null : nearestHandle(panel, xy);
      if (h) { state.active = h.ti; drag = { mode: 'pick', h }; }
      else drag = { mode: 'pan', start: xy, offset: panel.offset.slice(), moved: false };
    } else if (ev.button === 1) {
      drag = { mode: 'pan', start: xy, offset: panel.offset.slice(), moved: true };
    }
    ev.preventDefault();
  });
  window.addEventListener('mousemove', (ev) => {
    if (!drag) return;
    const xy = panel.eventXY(ev);
    if (drag.mode === 'pick') {
      setPick(state.trajectories[drag.h.ti], drag.h.end, panel.index, panel.toImage(xy));
    } else if (drag.mode === 'pan') {
      const dx = xy[0] - drag.start[0], dy = xy[1] - drag.start[1];
      if (Math.hypot(dx, dy) > 3) drag.moved = true;
      if (drag.moved) { panel.offset = [drag.offset[0] + dx, drag.offset[1] + dy]; panel.draw(); }
    } else if (drag.mode === 'wl') {
      panel.window = Math.max(1, drag.window + (xy[0] - drag.start[0]));
      panel.level = drag.level - (xy[1] - drag.start[1]);
      panel.applyWindow(); panel.draw(); syncWlInputs(panel);
    }
  });
  window.addEventListener('mouseup', (ev) => {
    if (!drag) return;
    if (drag.mode === 'pan' && !drag.moved && ev.button === 0) placePick(panel.index, panel.toImage(panel.eventXY(ev)));
    drag = null;
  });
  c.addEventListener('wheel', (ev) => {
    ev.preventDefault();
    const xy = panel.eventXY(ev);
    const before = panel.toImage(xy);
    panel.scale *= Math.exp(-ev.deltaY * 0.0015);
    panel.scale = Math.min(Math.max(panel.scale, 0.05), 40);
    const after = panel.toScreen(before);
    panel.offset = [panel.offset[0] + xy[0] - after[0], panel.offset[1] + xy[1] - after[1]];
    panel.draw();
  }, { passive: false });
  c.addEventListener('dblclick', () => { panel.fit(); panel.draw(); });
  const wl = panel.root.querySelectorAll('input[type=range]');
  wl.forEach((input) => input.addEventListener('input', () => {
    panel[input.dataset.wl] = Number(input.value);
    panel.applyWindow(); panel.draw();
  }));
  panel.root.querySelector('.pl-fit')?.addEventListener('click', () => { panel.fit(); panel.draw(); });
  panel.root.querySelector('.pl-one')?.addEventListener('click', () => {
    const w = panel.canvas.width / panel.dpr, h = panel.canvas.height / panel.dpr;
    panel.scale = 1; panel.offset = [(w - panel.view.width) / 2, (h - panel.view.height) / 2]; panel.draw();
  });
});

function syncWlInputs(panel) {
  panel.root.querySelectorAll('input[type=range]').forEach((input) => { input.value = panel[input.dataset.wl]; });
}

window.addEventListener('resize', () => panels.forEach((p) => { p.resize(); p.fit(); p.draw(); }));

// ------------------------------------------------------------------ trajectory list
const listEl = document.getElementById('trajectory-list');
const readoutEl = document.getElementById('readouts');
const fmt = (x, d = 1) => (x === undefined || x === null || Number.isNaN(x) ? '–' : Number(x).toFixed(d));

function addTrajectory() {
  const n = state.trajectories.length + 1;
  let name = `Trajectory ${n}`;
  const names = new Set(state.trajectories.map((t) => t.name));
  for (let k = n; names.has(name); k++) name = `Trajectory ${k + 1}`;
  state.trajectories.push({
    name,
    colour: COLOURS[(n - 1) % COLOURS.length],
    diameter_mm: 6.5,
    length_mm: null,
    picks: { entry: { view1: null, view2: null }, target: { view1: null, view2: null } },
  });
  state.active = state.trajectories.length - 1;
  state.dirty = true;
  renderList();
  redraw();
}

function renderList() {
  listEl.innerHTML = '';
  state.trajectories.forEach((t, ti) => {
    const li = document.createElement('li');
    li.className = ti === state.active ? 'active' : '';
    li.dataset.index = ti;
    li.innerHTML = `
      <input type="radio" name="active-trajectory" ${ti === state.active ? 'checked' : ''} aria-label="active">
      <input class="t-name" value="" aria-label="name" ${readOnly ? 'disabled' : ''}>
      <input class="t-colour" type="color" aria-label="colour" ${readOnly ? 'disabled' : ''}>
      <label>Ø <input class="t-diam" type="number" step="0.5" min="0.1" max="50" aria-label="diameter mm" ${readOnly ? 'disabled' : ''}> mm</label>
      <label>L <input class="t-len" type="number" step="5" min="1" max="500" aria-label="length mm" placeholder="auto" ${readOnly ? 'disabled' : ''}> mm</label>
      ${readOnly ? '' : '<button type="button" class="t-clear secondary outline small">Clear picks</button><button type="button" class="t-del secondary outline small">Delete</button>'}`;
    li.querySelector('.t-name').value = t.name;
    li.querySelector('.t-colour').value = t.colour;
    li.querySelector('.t-diam').value = t.diameter_mm;
    li.querySelector('.t-len').value = t.length_mm ?? '';
    li.querySelector('input[type=radio]').addEventListener('change', () => { state.active = ti; renderList(); redraw(); });
    li.querySelector('.t-name').addEventListener('change', (e) => { t.name = e.target.value; state.dirty = true; redraw(); });
    li.querySelector('.t-colour').addEventListener('input', (e) => { t.colour = e.target.value; state.dirty = true; redraw(); });
    li.querySelector('.t-diam').addEventListener('change', (e) => { t.diameter_mm = Number(e.target.value); state.dirty = true; redraw(); });
    li.querySelector('.t-len').addEventListener('change', (e) => { t.length_mm = e.target.value === '' ? null : Number(e.target.value); state.dirty = true; redraw(); });
    li.querySelector('.t-clear')?.addEventListener('click', () => {
      t.picks = { entry: { view1: null, view2: null }, target: { view1: null, view2: null } };
      state.dirty = true; redraw();
    });
    li.querySelector('.t-del')?.addEventListener('click', () => {
      state.trajectories.splice(ti, 1);
      state.active = Math.min(state.active, state.trajectories.length - 1);
      state.dirty = true; renderList(); redraw();
    });
    listEl.appendChild(li);
  });
}

function nextStep(t) {
  if (!t) return 'Add a trajectory, then click its entry point in view 1.';
  for (const end of ENDS) if (!t.picks[end].view1) return `Click the ${end} point in view 1.`;
  for (const end of ENDS) if (!t.picks[end].view2) return `Click the ${end} point in view 2 (it snaps to the ${end === 'entry' ? 'dashed' : 'dotted'} epipolar line).`;
  return 'Drag any pick to adjust; everything updates live.';
}

function renderReadouts() {
  const rows = state.trajectories.map((t, ti) => {
    const c = computed(t);
    const anat = c.anatomical && registered
      ? `incl ${fmt(c.anatomical.inclination_deg)}°, antev ${fmt(c.anatomical.anteversion_deg)}°, cran ${fmt(c.anatomical.cranial_deg)}°`
      : (c.anatomical ? '<span class="muted">needs both views registered to the CT</span>' : '–');
    const toolRow = state.tool?.vs_plan?.find((r) => r.name === t.name);
    return `<tr data-index="${ti}" class="${ti === state.active ? 'active' : ''}">
      <td><span class="swatch" style="background:${t.colour}"></span>${escapeHtml(t.name)}</td>
      <td class="ro-length">${c.complete ? fmt(c.length) : '–'}</td>
      <td class="ro-gap">${c.entryGap !== undefined ? fmt(c.entryGap, 2) : '–'} / ${c.targetGap !== undefined ? fmt(c.targetGap, 2) : '–'}</td>
      <td>${c.complete ? `${fmt(c.angles[0])}° / ${fmt(c.angles[1])}°` : '–'}</td>
      <td>${anat}</td>
      <td class="ro-tool">${toolRow ? `${fmt(toolRow.tip_to_plan_mm)} mm, ${fmt(toolRow.axis_angle_deg)}°` : '–'}</td>
    </tr>`;
  });
  readoutEl.innerHTML = rows.join('') || '<tr><td colspan="6" class="muted">No trajectory yet.</td></tr>';
  const t = state.trajectories[state.active];
  document.getElementById('next-step').textContent = readOnly ? 'Read-only.' : nextStep(t);
  const s = document.getElementById('save-state');
  if (s) s.textContent = state.dirty ? 'Unsaved changes' : '';
  if (state.tool) {
    document.getElementById('tool-status').textContent =
      `Tool (${state.tool.chain}) at ${new Date(state.tool.received_at).toLocaleTimeString()}`;
  }
  if (window.PlanningCT) window.PlanningCT.update();
  if (window.PlanningScene) window.PlanningScene.update(state.trajectories.map((tt) => ({ t: tt, c: computed(tt) })));
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[ch]));
}

// ------------------------------------------------------------------ save, tool polling
function csrf() {
  if (ctx.csrf) return ctx.csrf;
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : '';
}

// Two surgeons editing one plan: every save names the version it started from; the server
// answers 409 when another version was saved since, and the surgeon merges or saves over it.
state.basedOn = ctx.version ? ctx.version.number : 0;

function mergeTrajectories(theirs, ours) {
  const byName = new Map(theirs.map((t) => [t.name, t]));
  ours.forEach((t) => byName.set(t.name, t));
  return Array.from(byName.values());
}

function showConflict(data) {
  const msg = document.getElementById('save-message');
  msg.textContent = data.detail;
  msg.className = 'error';
  const theirs = cloneTrajectories(data.latest?.snapshot?.trajectories);
  const merge = document.createElement('button');
  merge.type = 'button'; merge.className = 'small'; merge.id = 'merge-plan';
  merge.textContent = `Merge with version ${data.latest.number}`;
  merge.addEventListener('click', () => {
    state.trajectories = mergeTrajectories(theirs, state.trajectories);
    state.basedOn = data.latest.number; state.dirty = true;
    msg.textContent = `Merged: trajectories of version ${data.latest.number} plus yours (yours win on the same name). Check, then save.`;
    msg.className = 'muted';
    redraw();
  });
  const overwrite = document.createElement('button');
  overwrite.type = 'button'; overwrite.className = 'small secondary outline'; overwrite.id = 'overwrite-plan';
  overwrite.textContent = 'Save mine over it';
  overwrite.addEventListener('click', () => { state.basedOn = data.latest.number; save(); });
  msg.append(' ', merge, ' ', overwrite);
}

async function save() {
  const msg = document.getElementById('save-message');
  msg.textContent = 'Saving…';
  msg.className = 'muted';
  const body = { trajectories: cloneTrajectories(state.trajectories), note: document.getElementById('version-note').value, based_on: state.basedOn };
  const res = await fetch(ctx.api.versions, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrf() },
    body: JSON.stringify(body),
    credentials: 'same-origin',
  });
  const data = await res.json().catch(() => ({ detail: `HTTP ${res.status}` }));
  if (res.status === 409 && data.latest) { showConflict(data); return; }
  if (!res.ok) { msg.textContent = data.detail || `HTTP ${res.status}`; msg.className = 'error'; return; }
  state.dirty = false;
  state.basedOn = data.number;
  msg.textContent = `Saved version ${data.number}: ${data.summary}`;
  msg.className = 'ok';
  document.getElementById('version-note').value = '';
  document.getElementById('current-version').textContent = data.number;
  const links = document.querySelectorAll('[data-export]');
  links.forEach((a) => { a.href = `${a.dataset.export}?version=${data.number}`; });
  const list = document.getElementById('version-list');
  if (list) {
    const li = document.createElement('li');
    li.innerHTML = `<a href="?version=${data.number}">v${data.number}</a> · ${escapeHtml(data.author)} · ${new Date(data.created_at).toLocaleString()} · ${escapeHtml(data.summary)}`;
    list.prepend(li);
  }
  redraw();
}

async function recordOutcome() {
  const msg = document.getElementById('save-message');
  const t = state.trajectories[state.active];
  if (!t) { msg.textContent = 'Select a trajectory first.'; msg.className = 'error'; return; }
  const body = { trajectory: t.name, version: ctx.postop.version, xray1: ctx.postop.xray1, xray2: ctx.postop.xray2, picks: t.picks };
  const res = await fetch(ctx.api.outcomes, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrf() },
    body: JSON.stringify(body),
    credentials: 'same-origin',
  });
  const data = await res.json().catch(() => ({ detail: `HTTP ${res.status}` }));
  if (res.status === 409 && data.latest) { showConflict(data); return; }
  if (!res.ok) { msg.textContent = data.detail || `HTTP ${res.status}`; msg.className = 'error'; return; }
  state.dirty = false;
  state.basedOn = data.number;
  msg.textContent = `${data.trajectory}: entry ${fmt(data.entry_deviation_mm)} mm, tip ${fmt(data.tip_deviation_mm)} mm, angle ${fmt(data.angular_deviation_deg)}°`;
  msg.className = 'ok';
}

async function pollTool() {
  try {
    // Without a tracked tool this poll is background: it does not keep an idle session alive.
    const headers = state.tool ? {} : { 'X-OrthoFuse-Background': '1' };
    const res = await fetch(ctx.api.tool_pose, { credentials: 'same-origin', cache: 'no-store', headers });
    if (res.ok) {
      const data = await res.json();
      const changed = JSON.stringify(data.tool) !== JSON.stringify(state.tool);
      state.tool = data.tool;
      if (changed) redraw();
    }
  } catch (e) { /* network hiccup: try again next tick */ }
  setTimeout(pollTool, ctx.poll_ms || 500);
}

// ------------------------------------------------------------------ start
document.getElementById('add-trajectory')?.addEventListener('click', addTrajectory);
document.getElementById('save-plan')?.addEventListener('click', save);
document.getElementById('record-outcome')?.addEventListener('click', recordOutcome);
window.addEventListener('beforeunload', (ev) => { if (state.dirty && !readOnly) { ev.preventDefault(); } });

state.trajectories = cloneTrajectories(ctx.version?.snapshot?.trajectories);
state.active = state.trajectories.length ? 0 : -1;
renderList();
Promise.all(panels.map((p, i) => p.load(ctx.images[i]))).then(() => {
  redraw();
  document.body.dataset.planningReady = '1';
}).catch((e) => {
  document.getElementById('save-message').textContent = `Could not load the X-ray images: ${e}`;
});
if (ctx.api.tool_pose && !state.postop) pollTool();

// test and automation hooks
window.planningApp = {
  state,
  views,
  panels,
  clientPoint(viewIndex, uv) {
    const p = panels[viewIndex];
    const rect = p.canvas.getBoundingClientRect();
    const s = p.toScreen(uv);
    return [rect.left + s[0], rect.top + s[1]];
  },
  computed,
  redraw,
};
