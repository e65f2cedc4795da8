"""The demo: a patient, a CT, calibrated C-arms and simulated shots for a first look.
Not part of the clinical site: load_demo refuses when DEBUG is off unless forced."""
