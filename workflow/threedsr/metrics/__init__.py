"""Scores: their registry (registry.py), PSNR / SSIM / LPIPS, NIQE, FID, MEt3R, multi-view consistency, the weights
they load, and the scoring of rendered test views."""
