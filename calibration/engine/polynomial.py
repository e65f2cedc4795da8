"""The distortion polynomial lives in :mod:`geometry.distortion`; this name is kept for the
calibration engine's modules while they move over."""

from geometry.distortion import (
    Poly2D,
    PolyFit,
    design_matrix,
    fit_inverse,
    fit_poly,
    fit_poly_select_order,
    invert_numerically,
    n_terms,
    term_exponents,
)

__all__ = [
    "Poly2D",
    "PolyFit",
    "design_matrix",
    "fit_inverse",
    "fit_poly",
    "fit_poly_select_order",
    "invert_numerically",
    "n_terms",
    "term_exponents",
]
