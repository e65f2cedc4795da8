"""Django-free registration science: geometry, DRR rendering, scene coordinates, network, PnP, refinement."""
