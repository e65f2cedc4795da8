// OHIF-style hotkeys. Keys act on the viewer when focus is not in a form field.
import { PRESETS } from './presets.js';

const TOOL_KEYS = { w: 'windowLevel', p: 'pan', z: 'zoom', c: 'crosshairs' };

/**
 * Installs the hotkeys; `viewer` provides setPrimary, reset, scroll, applyPreset, invert.
 * Keys act only while the pointer is over `root` or focus is inside it, so the rest of
 * the page keeps its keys (arrows still scroll the page elsewhere).
 */
export function installHotkeys(viewer, root, target = document) {
  const onKey = (event) => {
    if (!root.matches(':hover') && !root.contains(document.activeElement)) return;
    // Cornerstone's own key listener on a focused view calls preventDefault (it tracks
    // modifier keys), so defaultPrevented does not mean "handled" here.
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat && !/^Arrow|^Page/.test(event.key)) {
      return;
    }
    const field = event.target;
    if (field && (field.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(field.tagName))) {
      return;
    }
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    let handled = true;
    if (TOOL_KEYS[key]) {
      viewer.setPrimary(TOOL_KEYS[key]);
    } else if (key === 'r') {
      viewer.reset();
    } else if (key === 'i') {
      viewer.invert();
    } else if (key === 'ArrowUp' || key === 'ArrowLeft') {
      viewer.scroll(-1);
    } else if (key === 'ArrowDown' || key === 'ArrowRight') {
      viewer.scroll(1);
    } else if (key === 'PageUp') {
      viewer.scroll(-10);
    } else if (key === 'PageDown') {
      viewer.scroll(10);
    } else {
      const preset = PRESETS.find((item) => item.key === key);
      if (preset) viewer.applyPreset(preset.id);
      else handled = false;
    }
    if (handled) event.preventDefault();
  };
  target.addEventListener('keydown', onKey);
  return () => target.removeEventListener('keydown', onKey);
}

export const HOTKEY_HELP = [
  ['W', 'window/level (left drag)'],
  ['P', 'pan'],
  ['Z', 'zoom'],
  ['C', 'crosshairs (click to jump)'],
  ['R', 'reset views'],
  ['I', 'invert'],
  ['↑ ↓', 'previous / next slice'],
  ['PgUp PgDn', '10 slices'],
  ...PRESETS.map((preset) => [preset.key, `${preset.label} (W ${preset.window} / L ${preset.level})`]),
];
