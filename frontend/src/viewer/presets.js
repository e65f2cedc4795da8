// Window/level presets in Hounsfield units (width W, centre L), OHIF-compatible hotkeys.

export const PRESETS = [
  { id: 'soft', label: 'Soft tissue', window: 400, level: 40, key: '1' },
  { id: 'lung', label: 'Lung', window: 1500, level: -600, key: '2' },
  { id: 'liver', label: 'Liver', window: 150, level: 90, key: '3' },
  { id: 'bone', label: 'Bone', window: 2500, level: 480, key: '4' },
  { id: 'brain', label: 'Brain', window: 80, level: 40, key: '5' },
];

export const DEFAULT_PRESET_ID = 'soft';

export function presetById(id) {
  return PRESETS.find((preset) => preset.id === id) || null;
}

/** VOI range {lower, upper} in HU of a window width and level (centre). */
export function voiRange(window, level) {
  return { lower: level - window / 2, upper: level + window / 2 };
}

/** Window width and level (centre) of a VOI range {lower, upper}. */
export function windowLevel(range) {
  return { window: range.upper - range.lower, level: (range.upper + range.lower) / 2 };
}
