// Post-op deviations across patients (Plotly box + points per measure).
const rows = JSON.parse(document.getElementById('outcome-rows').textContent);
const label = (r) => `${r.patient_mrn} · ${r.plan} · ${r.trajectory}`;
const traces = [
  ['entry_deviation_mm', 'Entry deviation (mm)', 'y'],
  ['tip_deviation_mm', 'Tip deviation (mm)', 'y'],
  ['angular_deviation_deg', 'Angular deviation (°)', 'y2'],
].map(([key, name, yaxis]) => ({
  type: 'box', name, y: rows.map((r) => r[key]), text: rows.map(label), boxpoints: 'all', jitter: 0.4,
  pointpos: 0, yaxis, hovertemplate: '%{text}: %{y:.2f}<extra></extra>',
}));
window.Plotly.newPlot('outcome-chart', traces, {
  margin: { t: 20 },
  yaxis: { title: 'mm', rangemode: 'tozero' },
  yaxis2: { title: 'degrees', overlaying: 'y', side: 'right', rangemode: 'tozero' },
  showlegend: false,
}, { displaylogo: false, responsive: true });
