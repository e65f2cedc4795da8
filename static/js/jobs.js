/*
 * Live job progress bars (templates/jobs/_progress.html).
 *
 * Every element `.job-progress[data-job-id]` on the page that is not finished is refreshed
 * from the JSON endpoint in its `data-status-list-url` (one request for all bars, every
 * 1.5 s) without reloading the page. Each bar fires DOM events that pages can listen to:
 *   "orthofuse:job-update"   detail = the job's JSON (progress, message, live data, ...)
 *   "orthofuse:job-finished" detail = the job's full JSON (with result and timings)
 * e.g. a training page redraws its Plotly loss curve from `event.detail.live`.
 * Bars added later are picked up by calling `window.OrthoFuseJobs.refresh()`.
 */
(function () {
  "use strict";
  if (window.OrthoFuseJobs) {
    return; // the include may appear many times on one page; run once
  }
  var POLL_MS = 1500;
  var FINISHED = { succeeded: true, failed: true, cancelled: true };
  var timer = null;
  var busy = false;

  function bars() {
    return Array.prototype.slice.call(document.querySelectorAll(".job-progress[data-job-id]"));
  }

  function activeBars() {
    return bars().filter(function (el) {
      return !FINISHED[el.dataset.status];
    });
  }

  function setText(root, selector, text) {
    var node = root.querySelector(selector);
    if (node && node.textContent !== text) {
      node.textContent = text;
    }
    return node;
  }

  function render(el, job) {
    var bar = el.querySelector("progress");
    if (bar) {
      if (job.status === "queued") {
        bar.removeAttribute("value"); // indeterminate while waiting for a worker
      } else {
        bar.value = job.progress;
      }
    }
    var status = setText(el, ".job-status", job.status_display);
    if (status) {
      status.className = "job-status status-" + job.status;
    }
    setText(el, ".job-percent", job.status === "queued" ? "" : Math.round(job.progress * 100) + "%");
    setText(el, ".job-message", job.message || "");
    var error = setText(el, ".job-error", job.error || "");
    if (error) {
      error.hidden = !job.error;
    }
    var wasFinished = !!FINISHED[el.dataset.status];
    el.dataset.status = job.status;
    el.dispatchEvent(new CustomEvent("orthofuse:job-update", { bubbles: true, detail: job }));
    if (job.is_finished && !wasFinished) {
      finished(el, job);
    }
  }

  function fillDetail(job) {
    document.querySelectorAll('[data-job-hide-when-finished="' + job.id + '"]').forEach(function (node) {
      node.hidden = true;
    });
    var result = job.result || {};
    var link = typeof result.result_url === "string" ? result.result_url : "";
    if (link.charAt(0) === "/" && link.charAt(1) !== "/") {
      // a page of the site the job made (e.g. the imported CT study): shown once it succeeded
      document.querySelectorAll('[data-job-link-for="' + job.id + '"]').forEach(function (node) {
        var anchor = node.querySelector("a");
        if (anchor) {
          anchor.href = link;
          anchor.textContent = result.result_label || "Open the result";
        }
        node.hidden = false;
      });
    }
    document.querySelectorAll('[data-job-result-for="' + job.id + '"]').forEach(function (node) {
      node.textContent = job.result === null || job.result === undefined ? "–" : JSON.stringify(job.result, null, 2);
    });
    document.querySelectorAll('[data-job-timings-for="' + job.id + '"]').forEach(function (body) {
      var rows = Object.keys(job.timings || {}).map(function (name) {
        return [name, Number(job.timings[name])];
      });
      rows.sort(function (a, b) { return b[1] - a[1]; });
      body.textContent = "";
      rows.forEach(function (row) {
        var tr = document.createElement("tr");
        var name = document.createElement("td");
        var secs = document.createElement("td");
        name.textContent = row[0];
        secs.textContent = row[1].toFixed(3);
        tr.appendChild(name);
        tr.appendChild(secs);
        body.appendChild(tr);
      });
    });
  }

  function finished(el, job) {
    // One more request for the full record (result, timings) of the finished job.
    fetch(job.status_url, { credentials: "same-origin", headers: { Accept: "application/json", "X-OrthoFuse-Background": "1" } })
      .then(function (response) { return response.ok ? response.json() : job; })
      .catch(function () { return job; })
      .then(function (full) {
        fillDetail(full);
        el.dispatchEvent(new CustomEvent("orthofuse:job-finished", { bubbles: true, detail: full }));
      });
  }

  function schedule() {
    if (timer === null && activeBars().length) {
      timer = window.setTimeout(function () {
        timer = null;
        poll();
      }, POLL_MS);
    }
  }

  function poll() {
    var active = activeBars();
    if (busy || !active.length) {
      return;
    }
    var ids = [];
    active.forEach(function (el) {
      if (ids.indexOf(el.dataset.jobId) < 0) {
        ids.push(el.dataset.jobId);
      }
    });
    var url = active[0].dataset.statusListUrl + "?ids=" + ids.join(",");
    busy = true;
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json", "X-OrthoFuse-Background": "1" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        (data.jobs || []).forEach(function (job) {
          active.forEach(function (el) {
            if (el.dataset.jobId === String(job.id)) {
              render(el, job);
            }
          });
        });
      })
      .catch(function () { /* network hiccup: try again at the next tick */ })
      .then(function () {
        busy = false;
        schedule();
      });
  }

  window.OrthoFuseJobs = {
    refresh: function () {
      if (timer !== null) {
        window.clearTimeout(timer);
        timer = null;
      }
      poll();
    },
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", schedule);
  } else {
    schedule();
  }
})();
