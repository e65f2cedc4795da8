// Orientation letters (DICOM LPS) for the screen edges of a view, from its camera.

const LETTERS = [
  ['R', 'L'], // -x, +x
  ['A', 'P'], // -y, +y
  ['I', 'S'], // -z, +z
];

/** Letters of an LPS direction, strongest axis first ("L", "AS", ...; up to two). */
export function directionLetters(vector, threshold = 0.25) {
  return [0, 1, 2]
    .filter((axis) => Math.abs(vector[axis]) > threshold)
    .sort((a, b) => Math.abs(vector[b]) - Math.abs(vector[a]))
    .slice(0, 2)
    .map((axis) => LETTERS[axis][vector[axis] > 0 ? 1 : 0])
    .join('');
}

function cross(a, b) {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

/**
 * Letters at the top and left edges of a view. Cornerstone's viewUp points up the
 * screen and viewPlaneNormal toward the viewer, so screen-right = viewUp x normal.
 */
export function edgeLetters(camera) {
  const up = camera.viewUp;
  const right = cross(up, camera.viewPlaneNormal);
  return {
    top: directionLetters(up),
    left: directionLetters(right.map((value) => -value)),
  };
}
