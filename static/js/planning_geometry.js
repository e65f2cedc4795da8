// Two-view geometry for the planning page (plain ES module, no dependencies).
//
// Same definitions as webapp/planning/engine/views_geometry.py (tested against it):
// a view is {K: 3x3, T_cam_from_world: 4x4, width, height} (row-major nested arrays);
// pixels (u, v) with the centre of the top-left pixel at (0, 0); world in mm.

export function matVec3(M, v) {
  return [0, 1, 2].map((i) => M[i][0] * v[0] + M[i][1] * v[1] + M[i][2] * v[2]);
}

export function inv3(M) {
  const [a, b, c] = M[0];
  const [d, e, f] = M[1];
  const [g, h, i] = M[2];
  const A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
  const det = a * A + b * B + c * C;
  return [
    [A / det, -(b * i - c * h) / det, (b * f - c * e) / det],
    [B / det, (a * i - c * g) / det, -(a * f - c * d) / det],
    [C / det, -(a * h - b * g) / det, (a * e - b * d) / det],
  ];
}

const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
const add = (a, b) => [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
const scale = (a, s) => [a[0] * s, a[1] * s, a[2] * s];
const norm = (a) => Math.hypot(a[0], a[1], a[2]);
const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
export const vec = { dot, sub, add, scale, norm, cross };

function rot(T) { return [T[0].slice(0, 3), T[1].slice(0, 3), T[2].slice(0, 3)]; }
function trans(T) { return [T[0][3], T[1][3], T[2][3]]; }
function transpose3(R) { return [0, 1, 2].map((i) => [R[0][i], R[1][i], R[2][i]]); }

/** Camera-frame point of a world point (mm). */
export function toCamera(view, X) {
  return add(matVec3(rot(view.T_cam_from_world), X), trans(view.T_cam_from_world));
}

/** Project world point X (mm) to pixel [u, v]. */
export function project(view, X) {
  const h = matVec3(view.K, toCamera(view, X));
  return [h[0] / h[2], h[1] / h[2]];
}

/** Camera z (mm) of world point X; > 0 in front of the source. */
export function depth(view, X) { return toCamera(view, X)[2]; }

/** X-ray source position in world mm. */
export function sourceWorld(view) {
  const Rt = transpose3(rot(view.T_cam_from_world));
  return scale(matVec3(Rt, trans(view.T_cam_from_world)), -1);
}

/** The ray through pixel uv: {origin, dir} in world (unit dir, source -> detector). */
export function ray(view, uv) {
  const dCam = matVec3(inv3(view.K), [uv[0], uv[1], 1]);
  const d = matVec3(transpose3(rot(view.T_cam_from_world)), dCam);
  return { origin: sourceWorld(view), dir: scale(d, 1 / norm(d)) };
}

/** Midpoint triangulation: {point, gap} (world mm, distance between the rays). */
export function triangulate(view1, uv1, view2, uv2) {
  const r1 = ray(view1, uv1), r2 = ray(view2, uv2);
  const w0 = sub(r1.origin, r2.origin);
  const b = dot(r1.dir, r2.dir), d = dot(r1.dir, w0), e = dot(r2.dir, w0);
  const denom = 1 - b * b;
  if (denom < 1e-12) return null;
  const s = (b * e - d) / denom, t = (e - b * d) / denom;
  const p1 = add(r1.origin, scale(r1.dir, s)), p2 = add(r2.origin, scale(r2.dir, t));
  return { point: scale(add(p1, p2), 0.5), gap: norm(sub(p1, p2)) };
}

/** Epipolar line in viewTo of pick uv in viewFrom: [a, b, c], a u + b v + c = 0, a²+b²=1. */
export function epipolarLine(viewFrom, uv, viewTo) {
  // two points on the ray: the source (epipole) and a point 1 m along the ray
  const r = ray(viewFrom, uv);
  const p1 = toCamera(viewTo, r.origin);
  const p2 = toCamera(viewTo, add(r.origin, scale(r.dir, 1000)));
  const h1 = matVec3(viewTo.K, p1), h2 = matVec3(viewTo.K, p2);
  const l = cross(h1, h2); // line through both homogeneous image points
  const n = Math.hypot(l[0], l[1]);
  return [l[0] / n, l[1] / n, l[2] / n];
}

/** Orthogonal projection of pixel uv onto normalised line [a, b, c]. */
export function snapToLine(uv, line) {
  const dist = line[0] * uv[0] + line[1] * uv[1] + line[2];
  return [uv[0] - dist * line[0], uv[1] - dist * line[1]];
}

/** The segment of line [a, b, c] inside the rectangle [0, w-1] x [0, h-1] (or null). */
export function clipLine(line, w, h) {
  const [a, b, c] = line;
  const pts = [];
  const xmax = w - 1, ymax = h - 1;
  if (Math.abs(b) > 1e-12) {
    for (const x of [0, xmax]) { const y = -(a * x + c) / b; if (y >= 0 && y <= ymax) pts.push([x, y]); }
  }
  if (Math.abs(a) > 1e-12) {
    for (const y of [0, ymax]) { const x = -(b * y + c) / a; if (x >= 0 && x <= xmax) pts.push([x, y]); }
  }
  if (pts.length < 2) return null;
  return [pts[0], pts[pts.length - 1]];
}

/** Angle of the projected trajectory in the image (degrees, from +u, counter-clockwise on screen). */
export function imageAngle(uvEntry, uvTarget) {
  return (Math.atan2(-(uvTarget[1] - uvEntry[1]), uvTarget[0] - uvEntry[0]) * 180) / Math.PI;
}

/** Anatomical angles of entry -> target in LPS (see engine/trajectory.py). */
export function anatomicalAngles(entry, target) {
  const d0 = sub(target, entry);
  const d = scale(d0, 1 / norm(d0));
  const deg = 180 / Math.PI;
  return {
    inclination_deg: Math.atan2(Math.abs(d[0]), Math.abs(d[2])) * deg,
    anteversion_deg: Math.asin(Math.max(-1, Math.min(1, -d[1]))) * deg,
    cranial_deg: Math.asin(Math.max(-1, Math.min(1, d[2]))) * deg,
    axial_deg: Math.atan2(d[0], -d[1]) * deg,
  };
}

if (typeof window !== 'undefined') {
  window.PlanningGeometry = {
    project, depth, ray, triangulate, epipolarLine, snapToLine, clipLine, imageAngle,
    anatomicalAngles, sourceWorld, vec,
  };
}
