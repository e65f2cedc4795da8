"""calibrate_carm, dewarp and bench_calibration commands (thin wrappers over calibration.engine)."""
