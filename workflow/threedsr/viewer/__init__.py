"""`threedsr view`: every method's 3D model of a scene in the browser (viser), side by side, with the scene's cameras.

layers.py turns a checkpoint into the arrays a Gaussian-splat layer needs (the Mip-Splatting filter baked in, colour
from SH degree 0, a cap on the count); catalog.py finds what a run left for a scene (models, test renders and scores,
3DSR's step images) and what is missing; app.py is the viser server; browser.py drives headless Chromium (the tests).
"""
