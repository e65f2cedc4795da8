"""Geometry shared by every engine and page, Django-free (docs/CONVENTIONS.md):

- :mod:`geometry.camera`: the one pinhole C-arm ``Camera`` (``from_geometry``,
  ``from_profile``, ``from_source``, ``scaled``, ``cropped``) and projection,
  back-projection, source position and pixel rays;
- :mod:`geometry.rigid`: rigid transforms ``T_a_from_b`` with one validator and one
  tolerance, inverse, composition, re-orthonormalisation, distances and twists;
- :mod:`geometry.carm`: C-arm angles <-> ``T_cam_from_world``;
- :mod:`geometry.twoview`: triangulation, epipolar lines, the angle between views;
- :mod:`geometry.distortion`: the distortion polynomial of docs/CONVENTIONS.md (evaluation,
  fitting, inversion).
"""
