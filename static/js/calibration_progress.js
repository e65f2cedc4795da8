// Calibration page while the fit is computing: poll its status and reload when it is done.
// A background poll (X-OrthoFuse-Background) does not count as activity for the idle timeout.
const box = document.getElementById("calibration-progress");
if (box) {
  const url = box.dataset.statusUrl;
  const timer = setInterval(async () => {
    const r = await fetch(url, { credentials: "same-origin", headers: { "X-OrthoFuse-Background": "1" } });
    if (!r.ok) return;
    const s = await r.json();
    if (s.status !== "computing") { clearInterval(timer); window.location.reload(); }
  }, 1500);
}
