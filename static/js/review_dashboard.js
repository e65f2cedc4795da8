/*
 * Review dashboard charts (templates/review/dashboard.html), drawn with Plotly from the
 * filtered JSON of review:dashboard-data: true mTRE distribution (registrations with
 * ground truth), landmark projected errors (mm at the detector), success rate per
 * patient, and seconds per pipeline stage.
 * Test hook: window.OrthoFuseDashboard = { ready, rows }.
 */
(function () {
  "use strict";
  var api = { ready: false, rows: 0 };
  window.OrthoFuseDashboard = api;
  var CONFIG = { displaylogo: false, responsive: true };
  var MARGIN = { t: 40, r: 20, b: 50, l: 55 };

  function empty(el, title, text) {
    window.Plotly.newPlot(el, [], {
      title: { text: title, font: { size: 14 } }, margin: MARGIN,
      xaxis: { visible: false }, yaxis: { visible: false },
      annotations: [{ text: text, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }],
    }, CONFIG);
  }

  function draw(data) {
    var rows = data.rows || [];
    var mtre = rows.map(function (r) { return r.true_mtre_mm; }).filter(function (x) { return x !== null && x !== undefined; });
    if (mtre.length) {
      window.Plotly.newPlot("chart-mtre", [{ x: mtre, type: "histogram", nbinsx: 20, name: "mTRE" }], {
        title: { text: "True mTRE (mm), " + mtre.length + " with ground truth", font: { size: 14 } },
        margin: MARGIN, xaxis: { title: { text: "mm" } }, yaxis: { title: { text: "registrations" } },
      }, CONFIG);
    } else {
      empty("chart-mtre", "True mTRE (mm)", "no registration with ground truth");
    }
    var lm = [];
    rows.forEach(function (r) { lm = lm.concat(r.landmark_errors_mm || []); });
    if (lm.length) {
      window.Plotly.newPlot("chart-landmarks", [{ x: lm, type: "histogram", nbinsx: 20, marker: { color: "#e69f00" } }], {
        title: { text: "Landmark error at the detector (mm), " + lm.length + " landmarks", font: { size: 14 } },
        margin: MARGIN, xaxis: { title: { text: "mm" } }, yaxis: { title: { text: "landmarks" } },
      }, CONFIG);
    } else {
      empty("chart-landmarks", "Landmark error (mm)", "no landmarks yet");
    }
    var per = (data.summary && data.summary.per_patient) || [];
    if (per.length) {
      window.Plotly.newPlot("chart-success", [{
        x: per.map(function (p) { return p.patient_mrn; }),
        y: per.map(function (p) { return 100 * p.success_rate; }),
        text: per.map(function (p) { return p.ok + "/" + p.finished; }),
        type: "bar", marker: { color: "#009e73" },
      }], {
        title: { text: "Success rate per patient (%)", font: { size: 14 } }, margin: MARGIN,
        yaxis: { range: [0, 100], title: { text: "%" } },
      }, CONFIG);
    } else {
      empty("chart-success", "Success rate per patient", "no finished registrations");
    }
    var stages = {};
    rows.forEach(function (r) {
      Object.keys(r.stages || {}).forEach(function (k) {
        (stages[k] = stages[k] || []).push(r.stages[k]);
      });
    });
    var names = Object.keys(stages);
    if (names.length) {
      window.Plotly.newPlot("chart-stages", names.map(function (k) {
        return { y: stages[k], type: "box", name: k, boxpoints: "all", jitter: 0.3 };
      }), {
        title: { text: "Seconds per stage", font: { size: 14 } }, margin: MARGIN, showlegend: false,
        yaxis: { title: { text: "s" }, rangemode: "tozero" },
      }, CONFIG);
    } else {
      empty("chart-stages", "Seconds per stage", "no timings yet");
    }
    api.rows = rows.length;
    api.ready = true;
  }

  function init() {
    var box = document.getElementById("dash-charts");
    if (!box || !window.Plotly) {
      return;
    }
    fetch(box.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(draw)
      .catch(function () { api.error = true; });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
