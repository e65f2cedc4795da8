"""Django-free trajectory maths for two-view planning (no Django imports).

Frames: ``world`` is the plan's 3D frame, the CT's LPS frame (mm) when both views are
registered to the CT, else the C-arm frame built from the C-arm angles (also LPS-like,
millimetres). Transforms are 4x4 ``T_a_from_b`` mapping frame-b points to frame a.
"""
