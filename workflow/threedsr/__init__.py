"""threedsr: 3D-consistent super-resolution of multi-view captures (3DSR) and its baselines."""

__version__ = "0.1.0"
