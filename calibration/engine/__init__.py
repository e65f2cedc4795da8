"""Django-free calibration science: phantoms, bead detection, distortion fitting, effective source, two-view geometry.

Public entry points (frames and units as in docs/CONVENTIONS.md):

- ``phantom.load_phantom(path)`` / ``phantom.phantom_from_dict(data)`` -> ``Phantom``
  (strict validation, ``PhantomError``); ``phantom.builtin_phantom("clipon_two_layer" |
  "dot_grid_plate")`` for the shipped definitions in ``calibration/phantoms/``.
  ``phantom_grid.analyse_grid`` reads plane 0 as a square grid with a code;
  ``phantom_generators`` wrote the shipped files.
- ``calibrate.calibrate(image, phantom, (sx, sy))`` -> ``CalibrationResult`` whose
  ``.profile`` is the ``profile.json`` object; refusals raise ``CalibrationError`` with a
  one-line reason (blank image, wrong phantom, too few beads, empty quadrant, ...). Both
  types live in ``result`` (``calibrate`` exports them too); a bead phantom is fitted by
  ``bead_fit``, its profile built by ``bead_result``, its refusals checked by
  ``bead_checks`` (``pixels``: mm/pixel conversions).
  A dewarping grid plate (``phantom.grid``) is calibrated by ``plate.calibrate_plate``
  (distortion only, ``"source": "nominal"`` at ``sdd_mm``) over ``plate_field`` (the
  exposed field), ``plate_markers.detect_markers`` and ``plate_lattice``
  (``find_plate_lattice``, ``measure_lattice_deviation``); ``lattice.index_lattice``
  gives integer coordinates on a distorted square or hexagonal lattice.
- ``dewarp.dewarp_image(stored_image, profile)`` (cached ``cv2.remap`` maps; applies the
  profile's ``flip_horizontal`` itself, so pass the image as stored by the device);
  ``dewarp.check_profile(profile)``.
- The distortion polynomial (``Poly2D``) and two-view geometry live in ``geometry.distortion``
  and ``geometry.twoview``; the engine imports them there.
- ``source.estimate_source`` (K from a source: ``geometry.camera.Camera.from_source``).
- ``detector.project_to_detector`` (central projection onto the detector plane, mm),
  ``lattice.lattice_fit_rms`` (distance of points from the best perfect lattice).
- Simulated phantom and plate frames for tests, benchmarks and the demo live outside the
  engine, in :mod:`simulation.phantom_frames` and :mod:`simulation.plate_frames`.
- ``detect.detect_beads`` (sub-pixel blobs), ``correspond`` (bead naming for the square-grid
  design), ``identify`` and ``identify_code.identify_near`` (general naming of any
  two-layer phantom from phantom.json: square, hexagonal or irregular near layer, code by
  sizes, missing beads or outline), ``general_identification`` (its labellings calibrated,
  ties decided by the far layer).
"""
