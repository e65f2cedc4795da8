"""Django-free DICOM and NIfTI reading: CT volumes and X-ray images (no Django imports)."""
