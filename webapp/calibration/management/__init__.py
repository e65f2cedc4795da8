"""Management commands of the calibration app."""
