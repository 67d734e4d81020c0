"""The data stage: official datasets and their download, synthetic scenes, poses (LLFF, COLMAP, SfM), lens
distortion, downsampling to LR and HR, and the prepared scene every later stage reads."""
