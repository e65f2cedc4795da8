/*
 * Intra-operative session page (templates/operating/session.html).
 *
 * Polls the session's JSON (data-url on #shots) every second and keeps one tile per shot:
 * the X-ray preview while it registers, the overlay once its registration ends, the
 * device note of an uncalibrated C-arm and the refusal reason in words. A tile's
 * "pin" checkbox (name "shot") feeds the form that opens the two-view plan; at most two
 * stay checked (pinning a third unpins the oldest).
 */
(function () {
  "use strict";
  var POLL_MS = 1000;
  var grid = document.getElementById("shots");
  if (!grid) {
    return;
  }
  var empty = document.getElementById("shots-empty");
  var pinned = [];

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = text;
    }
    return node;
  }

  function angle(value) {
    return value === null || value === undefined ? "?" : Math.round(value) + "°";
  }

  function onPin(event) {
    var box = event.target;
    pinned = pinned.filter(function (b) { return b !== box; });
    if (box.checked) {
      pinned.push(box);
      while (pinned.length > 2) {
        pinned.shift().checked = false;
      }
    }
  }

  function makeTile(shot) {
    var tile = el("article", "shot");
    tile.id = "shot-" + shot.id;
    tile.dataset.shotId = String(shot.id);
    var title = el("div", "shot-title");
    tile.appendChild(title);
    var img = el("img", "shot-image");
    img.alt = "X-ray " + shot.xray_id;
    tile.appendChild(img);
    tile.appendChild(el("div", "shot-state"));
    tile.appendChild(el("div", "shot-note"));
    var link = el("a", "shot-link", "registration");
    link.hidden = true;
    tile.appendChild(link);
    var label = el("label", "shot-pin");
    var box = document.createElement("input");
    box.type = "checkbox";
    box.name = "shot";
    box.value = String(shot.id);
    box.addEventListener("change", onPin);
    label.appendChild(box);
    label.appendChild(document.createTextNode(" pin as planning view"));
    tile.appendChild(label);
    return tile;
  }

  function update(tile, shot) {
    tile.className = "shot state-" + shot.state;
    tile.dataset.state = shot.state;
    tile.querySelector(".shot-title").textContent =
      "#" + shot.xray_id + " " + (shot.description || "X-ray") +
      " · " + angle(shot.angles[0]) + " / " + angle(shot.angles[1]);
    var img = tile.querySelector(".shot-image");
    var src = shot.overlay_url || shot.preview_url;
    if (img.getAttribute("src") !== src) {
      img.setAttribute("src", src);
      img.dataset.kind = shot.overlay_url ? "overlay" : "preview";
    }
    var words = shot.message;
    if (shot.state === "registering" && shot.progress) {
      words += " (" + Math.round(shot.progress * 100) + "%)";
    }
    tile.querySelector(".shot-state").textContent = words;
    var note = tile.querySelector(".shot-note");
    note.textContent = shot.device_note || "";
    note.hidden = !shot.device_note;
    var link = tile.querySelector(".shot-link");
    if (shot.registration_url) {
      link.href = shot.registration_url;
      link.hidden = false;
    }
  }

  function render(data) {
    data.shots.forEach(function (shot) {
      var tile = document.getElementById("shot-" + shot.id);
      if (!tile) {
        tile = makeTile(shot);
        grid.appendChild(tile);
      }
      update(tile, shot);
    });
    if (empty) {
      empty.hidden = data.shots.length > 0;
    }
  }

  function poll() {
    fetch(grid.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(render)
      .catch(function () { /* try again at the next tick */ })
      .then(function () { window.setTimeout(poll, POLL_MS); });
  }

  poll();
})();
