// Calibration QA plots (Plotly): detected beads over the image, residual vectors,
// residual histogram, and the effective source with the far-layer geometry.
const qa = JSON.parse(document.getElementById("qa-data").textContent);
const imageUrl = document.getElementById("qa-script").dataset.imageUrl;
const cfg = { responsive: true, displaylogo: false };
const imageAxes = (w, h) => ({
  xaxis: { range: [0, w], showgrid: false, zeroline: false, title: "u (px)" },
  yaxis: { range: [h, 0], showgrid: false, zeroline: false, scaleanchor: "x", title: "v (px)" },
  margin: { l: 50, r: 10, t: 10, b: 40 },
  height: 420,
});

function beadsPlot() {
  const near = qa.detected.filter((b) => b.plane === 0);
  const far = qa.detected.filter((b) => b.plane === 1);
  const trace = (rows, name, color, symbol) => ({
    x: rows.map((b) => b.x), y: rows.map((b) => b.y), text: rows.map((b) => b.id),
    mode: "markers", type: "scatter", name,
    marker: { color, size: 8, symbol, line: { width: 1.5, color } },
    hovertemplate: "%{text}<br>(%{x:.2f}, %{y:.2f}) px<extra></extra>",
  });
  const layout = imageAxes(qa.width, qa.height);
  layout.images = [{ source: imageUrl, xref: "x", yref: "y", x: 0, y: 0, sizex: qa.width, sizey: qa.height, sizing: "stretch", layer: "below" }];
  layout.legend = { orientation: "h" };
  Plotly.newPlot("plot-beads", [
    trace(near.filter((b) => b.used), "near layer (fit)", "#1f9d55", "circle-open"),
    trace(near.filter((b) => !b.used), "near layer (held out / rejected)", "#c0392b", "x-open"),
    trace(far, "far layer (source)", "#2b6cb0", "diamond-open"),
  ], layout, cfg);
}

function vectorsPlot() {
  const gain = 50;
  const xs = [], ys = [];
  for (const v of qa.vectors) {
    xs.push(v.x, v.x + gain * v.dx, null);
    ys.push(v.y, v.y + gain * v.dy, null);
  }
  Plotly.newPlot("plot-vectors", [
    { x: xs, y: ys, mode: "lines", type: "scatter", line: { color: "#c0392b", width: 1.5 }, name: "residual ×50", hoverinfo: "skip" },
    { x: qa.vectors.map((v) => v.x), y: qa.vectors.map((v) => v.y), text: qa.vectors.map((v) => `${v.id}: ${Math.hypot(v.dx, v.dy).toFixed(3)} px`),
      mode: "markers", type: "scatter", marker: { size: 4, color: "#333" }, name: "bead", hovertemplate: "%{text}<extra></extra>" },
  ], imageAxes(qa.width, qa.height), cfg);
}

function histogramPlot() {
  const sx = qa.pixel_spacing_mm ? qa.pixel_spacing_mm[0] : 1;
  Plotly.newPlot("plot-hist", [{
    x: qa.residuals_px.map((r) => r * sx), type: "histogram", nbinsx: 20, marker: { color: "#2b6cb0" },
  }], { xaxis: { title: "residual after dewarping (mm)" }, yaxis: { title: "beads" }, margin: { l: 50, r: 10, t: 10, b: 40 }, height: 320 }, cfg);
}

function sourcePlot() {
  if (!qa.source_mm) {
    document.getElementById("plot-source").textContent = "No source: single-plane phantom.";
    return;
  }
  const [sx, sy, sz] = qa.source_mm;
  const lat = qa.source_uncertainty_mm ? qa.source_uncertainty_mm.lateral : 0;
  const ax = qa.source_uncertainty_mm ? qa.source_uncertainty_mm.axial : 0;
  const w = qa.width * qa.pixel_spacing_mm[0] / 2, h = qa.height * qa.pixel_spacing_mm[1] / 2;
  const det = { x: [-w, w, w, -w, -w], y: [-h, -h, h, h, -h], z: [0, 0, 0, 0, 0], type: "scatter3d", mode: "lines", name: "detector", line: { color: "#555" } };
  const rays = { x: [], y: [], z: [], type: "scatter3d", mode: "lines", name: "frustum", line: { color: "#aaa" } };
  for (const [cx, cy] of [[-w, -h], [w, -h], [w, h], [-w, h]]) { rays.x.push(sx, cx, null); rays.y.push(sy, cy, null); rays.z.push(sz, 0, null); }
  const src = { x: [sx], y: [sy], z: [sz], type: "scatter3d", mode: "markers", name: `source ±${lat.toFixed(2)} mm lateral, ±${ax.toFixed(2)} mm axial`, marker: { size: 5, color: "#c0392b" } };
  Plotly.newPlot("plot-source", [det, rays, src], {
    scene: { xaxis: { title: "x (mm)" }, yaxis: { title: "y (mm)" }, zaxis: { title: "z (mm)" }, aspectmode: "data" },
    margin: { l: 0, r: 0, t: 0, b: 0 }, height: 380, legend: { orientation: "h" },
  }, cfg);
}

beadsPlot();
vectorsPlot();
histogramPlot();
sourcePlot();
window.orthofuseQA = { ready: true, nBeads: qa.detected.length };
