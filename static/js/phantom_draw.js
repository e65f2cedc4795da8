// Phantom drawing form: show the fields of the chosen kind only (plate or two-layer).
const PLATE_ONLY = ["marker"];
const TWO_LAYER_ONLY = ["near_height_mm", "layer_gap_mm", "far_pitch_mm", "far_offset_mm", "size_ratio"];

function update(form) {
  const kind = form.querySelector("[name=kind]").value;
  for (const name of PLATE_ONLY) {
    form.querySelector(`[data-field=${name}]`).hidden = kind !== "plate";
  }
  for (const name of TWO_LAYER_ONLY) {
    form.querySelector(`[data-field=${name}]`).hidden = kind !== "two-layer";
  }
}

const form = document.getElementById("draw-form");
if (form) {
  form.querySelector("[name=kind]").addEventListener("change", () => update(form));
  update(form);
}
