/*
 * Registration pages.
 *  - Overlay viewer (templates/registration_site/_viewer.html): the opacity slider and the
 *    toggle set the CSS opacity of the green bone-edge overlay stacked on the X-ray.
 *  - Training page (registration_site/model_detail.html): polls the model's curve JSON and
 *    draws the loss and the median scene-coordinate error with Plotly until the model is
 *    no longer training.
 *  - A page with [data-reload-on-finish] reloads when its job bar reports the end.
 * Test hook: window.OrthoFuseRegistration = { opacity(), curvePoints, polls }.
 */
(function () {
  "use strict";
  if (window.OrthoFuseRegistration) {
    return;
  }
  var api = { curvePoints: 0, polls: 0 };
  window.OrthoFuseRegistration = api;

  function setupViewer() {
    var slider = document.getElementById("overlay-opacity");
    var toggle = document.getElementById("overlay-toggle");
    var overlay = document.getElementById("reg-overlay");
    var out = document.getElementById("overlay-opacity-value");
    if (!slider || !overlay) {
      return;
    }
    function apply() {
      var value = Number(slider.value) / 100;
      var shown = !toggle || toggle.checked;
      overlay.style.opacity = shown ? String(value) : "0";
      overlay.hidden = !shown;
      slider.disabled = !shown;
      if (out) {
        out.textContent = Math.round(value * 100) + "%";
      }
    }
    slider.addEventListener("input", apply);
    if (toggle) {
      toggle.addEventListener("change", apply);
    }
    api.opacity = function () {
      return overlay.hidden ? 0 : Number(overlay.style.opacity);
    };
    apply();
  }

  function drawCurve(el, data) {
    if (!window.Plotly) {
      return;
    }
    var curve = data.curve || [];
    var steps = curve.map(function (p) { return p.step; });
    var traces = [
      { x: steps, y: curve.map(function (p) { return p.loss; }), name: "loss", mode: "lines", line: { width: 1 }, opacity: 0.5 },
      { x: steps, y: curve.map(function (p) { return p.loss_ema; }), name: "loss (smoothed)", mode: "lines" },
      { x: steps, y: curve.map(function (p) { return p.median_error_mm; }), name: "median error (mm)", mode: "lines", yaxis: "y2" },
    ];
    var layout = {
      margin: { t: 30, r: 60, b: 40, l: 60 },
      title: { text: "Training (" + data.status_display + ")", font: { size: 14 } },
      xaxis: { title: { text: "step" } },
      yaxis: { title: { text: "loss" } },
      yaxis2: { title: { text: "median error (mm)" }, overlaying: "y", side: "right", rangemode: "tozero" },
      legend: { orientation: "h", y: -0.2 },
    };
    window.Plotly.react(el, traces, layout, { displaylogo: false, responsive: true });
    api.curvePoints = curve.length;
  }

  function setupCurve() {
    var el = document.getElementById("loss-curve");
    if (!el) {
      return;
    }
    var url = el.dataset.curveUrl;
    var statusBadge = document.getElementById("model-status");
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json", "X-OrthoFuse-Background": "1" } })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (data) {
          api.polls += 1;
          drawCurve(el, data);
          if (statusBadge) {
            statusBadge.textContent = data.status_display;
            statusBadge.className = "badge status-" + data.status;
          }
          var wasTraining = el.dataset.status === "training";
          el.dataset.status = data.status;
          if (data.status === "training") {
            setTimeout(poll, 2000);
          } else if (wasTraining) {
            window.location.reload();
          }
        })
        .catch(function () { setTimeout(poll, 5000); });
    }
    poll();
  }

  function setupReload() {
    var box = document.querySelector("[data-reload-on-finish]");
    if (!box) {
      return;
    }
    document.addEventListener("orthofuse:job-finished", function () {
      window.location.reload();
    });
  }

  function init() {
    setupViewer();
    setupCurve();
    setupReload();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
