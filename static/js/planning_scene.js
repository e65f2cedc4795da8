// 3D view of a plan (Plotly): bone surface, C-arm source/detector frusta, trajectories
// as cylinders (updated live from the planning page), and the tracked tool.
import * as G from './planning_geometry.js';

const el = document.getElementById('scene3d');
const ctx = JSON.parse(document.getElementById('planning-context').textContent);
let base = [];
let pending = null;
let timer = null;

function cylinder(a, b, radius, colour, name, n = 16) {
  const axis = G.vec.sub(b, a);
  const len = G.vec.norm(axis);
  if (len < 1e-6) return null;
  const d = G.vec.scale(axis, 1 / len);
  const helper = Math.abs(d[0]) < 0.9 ? [1, 0, 0] : [0, 1, 0];
  const u = G.vec.cross(d, helper);
  const un = G.vec.scale(u, 1 / G.vec.norm(u));
  const v = G.vec.cross(d, un);
  const x = [], y = [], z = [], i = [], j = [], k = [];
  for (let s = 0; s < n; s++) {
    const ang = (2 * Math.PI * s) / n;
    const off = G.vec.add(G.vec.scale(un, radius * Math.cos(ang)), G.vec.scale(v, radius * Math.sin(ang)));
    for (const p of [a, b]) { const q = G.vec.add(p, off); x.push(q[0]); y.push(q[1]); z.push(q[2]); }
  }
  for (let s = 0; s < n; s++) {
    const a0 = 2 * s, b0 = 2 * s + 1, a1 = (2 * s + 2) % (2 * n), b1 = (2 * s + 3) % (2 * n);
    i.push(a0, b0); j.push(a1, a1); k.push(b0, b1);
  }
  return { type: 'mesh3d', x, y, z, i, j, k, color: colour, opacity: 1, name, showlegend: true, hoverinfo: 'name' };
}

function render(items) {
  const traces = base.slice();
  for (const { t, c } of items || []) {
    if (!c.complete) continue;
    const d = G.vec.sub(c.target, c.entry);
    const n = G.vec.norm(d);
    const L = t.length_mm || n;
    const tip = G.vec.add(c.entry, G.vec.scale(d, L / Math.max(n, 1e-9)));
    const cyl = cylinder(c.entry, tip, t.diameter_mm / 2, t.colour, t.name);
    if (cyl) traces.push(cyl);
  }
  const layout = {
    margin: { l: 0, r: 0, t: 0, b: 0 },
    scene: { aspectmode: 'data', xaxis: { title: 'x (L) mm' }, yaxis: { title: 'y (P) mm' }, zaxis: { title: 'z (S) mm' } },
    legend: { orientation: 'h' },
  };
  window.Plotly.react(el, traces, layout, { displaylogo: false, responsive: true });
}

window.PlanningScene = {
  update(items) {
    pending = items;
    if (timer) return;
    timer = setTimeout(() => { timer = null; if (window.Plotly) render(pending); }, 150);
  },
};

if (el && ctx.api.scene) {
  fetch(ctx.api.scene, { credentials: 'same-origin' })
    .then((r) => r.json())
    .then((data) => { base = data.traces || []; window.PlanningScene.update(pending || []); })
    .catch(() => {});
}
