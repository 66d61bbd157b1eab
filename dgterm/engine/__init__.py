"""The diffusion runtime. Imports no UI code, and no torch until it is used."""
