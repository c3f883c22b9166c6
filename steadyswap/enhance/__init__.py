"""The face enhancer stage: swapped faces re-rendered by FaceFusion's enhancer models, between swap and colour."""
