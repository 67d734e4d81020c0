"""The methods the benchmark compares: their registry (registry.py), the 3DGS fits and what each trains on, 3DSR's
loop, SuperGaussian's frames."""
