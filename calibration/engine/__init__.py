"""Django-free calibration science: phantoms, bead detection, distortion fitting, effective source, two-view geometry."""
