// Phantom drawing form: show the fields of the chosen kind only (plate or two-layer),
// and keep a preview of the expected projection of the drawing (fetched from the
// server as a PNG, nothing stored) beside the form.
const PLATE_ONLY = ["marker"];
const TWO_LAYER_ONLY = [
  "near_height_mm", "layer_gap_mm", "far_pitch_mm", "far_offset_mm", "size_ratio", "code_fraction",
];
const DELAY_MS = 400;

function showFields(form) {
  const kind = form.querySelector("[name=kind]").value;
  for (const name of PLATE_ONLY) {
    form.querySelector(`[data-field=${name}]`).hidden = kind !== "plate";
  }
  for (const name of TWO_LAYER_ONLY) {
    form.querySelector(`[data-field=${name}]`).hidden = kind !== "two-layer";
  }
}

function query(form) {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form)) {
    if (key !== "csrfmiddlewaretoken" && typeof value === "string") params.append(key, value);
  }
  return params.toString();
}

function previewer(form) {
  const image = document.getElementById("draft-preview-image");
  const status = document.getElementById("draft-preview-status");
  let timer = null;
  let latest = 0;
  let shownUrl = null;
  async function refresh() {
    const ticket = ++latest;
    status.textContent = "Drawing the expected projection…";
    let response;
    try {
      response = await fetch(`${form.dataset.previewUrl}?${query(form)}`, { credentials: "same-origin" });
    } catch (err) {
      if (ticket === latest) status.textContent = `No preview: the server could not be reached (${err}).`;
      return;
    }
    if (ticket !== latest) return;
    if (!response.ok) {
      image.hidden = true;
      status.textContent = (await response.text()) || `No preview (HTTP ${response.status}).`;
      status.classList.add("error");
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    if (ticket !== latest) return URL.revokeObjectURL(url);
    if (shownUrl) URL.revokeObjectURL(shownUrl);
    shownUrl = url;
    image.src = url;
    image.hidden = false;
    status.classList.remove("error");
    status.textContent = "Expected projection through a nominal C-arm (source 1000 mm above the detector): "
      + "beads dark, holes bright, far-layer beads lighter, coded beads larger.";
  }
  return () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, DELAY_MS);
  };
}

const form = document.getElementById("draw-form");
if (form) {
  const schedule = previewer(form);
  form.querySelector("[name=kind]").addEventListener("change", () => showFields(form));
  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
  showFields(form);
  schedule();
}
