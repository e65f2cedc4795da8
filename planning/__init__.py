"""Trajectory planning science, Django-free: two-view geometry of screws and wires in the CT frame."""
