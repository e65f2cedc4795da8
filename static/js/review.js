/*
 * Review page (templates/review/registration.html): clicking the registered X-ray picks a
 * 2D landmark (pixel centre convention: u = column, v = row, top-left pixel centre at
 * (0, 0), in pixels of the registered image); "Use CT viewer position" copies the CT
 * viewer's current point (LPS mm: where its axial, coronal and sagittal planes meet, i.e.
 * where the crosshairs were last clicked) into x, y, z.
 * Saved landmarks are drawn as circles, the pending pick as a cross.
 * Test hook: window.OrthoFuseReview = { pick(u, v), picked }.
 */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var api = { picked: null };
  window.OrthoFuseReview = api;

  function init() {
    var viewer = document.querySelector("[data-reg-viewer]");
    var stack = document.getElementById("reg-stack");
    var marks = document.getElementById("reg-marks");
    var u = document.getElementById("lm-u");
    var v = document.getElementById("lm-v");
    if (!viewer || !stack || !marks || !u || !v) {
      return;
    }
    var W = Number(viewer.dataset.width), H = Number(viewer.dataset.height);
    var r = Math.max(W, H) / 120;
    stack.classList.add("picking");

    function mark(cx, cy, cls, cross) {
      if (cross) {
        [[-1, -1, 1, 1], [-1, 1, 1, -1]].forEach(function (d) {
          var line = document.createElementNS(SVG, "line");
          line.setAttribute("x1", cx + 0.5 + d[0] * r * 1.5);
          line.setAttribute("y1", cy + 0.5 + d[1] * r * 1.5);
          line.setAttribute("x2", cx + 0.5 + d[2] * r * 1.5);
          line.setAttribute("y2", cy + 0.5 + d[3] * r * 1.5);
          line.setAttribute("stroke", "#ff3b30");
          line.setAttribute("stroke-width", r / 2);
          line.setAttribute("class", cls);
          marks.appendChild(line);
        });
        return;
      }
      var c = document.createElementNS(SVG, "circle");
      c.setAttribute("cx", cx + 0.5);
      c.setAttribute("cy", cy + 0.5);
      c.setAttribute("r", r);
      c.setAttribute("fill", "none");
      c.setAttribute("stroke", "#ffcc00");
      c.setAttribute("stroke-width", r / 3);
      c.setAttribute("class", cls);
      marks.appendChild(c);
    }

    document.querySelectorAll("#landmark-table tbody tr").forEach(function (row) {
      mark(Number(row.dataset.u), Number(row.dataset.v), "saved", false);
    });

    api.pick = function (pu, pv) {
      marks.querySelectorAll(".pending").forEach(function (n) { n.remove(); });
      u.value = pu.toFixed(1);
      v.value = pv.toFixed(1);
      api.picked = [pu, pv];
      mark(pu, pv, "pending", true);
    };

    stack.addEventListener("click", function (event) {
      var rect = stack.getBoundingClientRect();
      if (!rect.width || !rect.height) {
        return;
      }
      var pu = ((event.clientX - rect.left) / rect.width) * W - 0.5;
      var pv = ((event.clientY - rect.top) / rect.height) * H - 0.5;
      api.pick(pu, pv);
    });

    var fromCt = document.getElementById("lm-from-ct");
    if (fromCt) {
      fromCt.addEventListener("click", function () {
        var hook = window.orthofuseViewer;
        if (!hook || !hook.ready) {
          fromCt.textContent = "CT viewer not ready";
          return;
        }
        var v = hook.viewer;
        // the point where the three planes meet (a crosshairs click moves the other two
        // planes through the clicked point): x of sagittal, y of coronal, z of axial
        var focal = {};
        v.views.forEach(function (view) {
          focal[view.name] = v.engine.getViewport(view.viewportId).getCamera().focalPoint;
        });
        var p = [focal.sagittal[0], focal.coronal[1], focal.axial[2]];
        document.getElementById("lm-x").value = p[0].toFixed(1);
        document.getElementById("lm-y").value = p[1].toFixed(1);
        document.getElementById("lm-z").value = p[2].toFixed(1);
      });
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
