"""Foundation: the evidence folder format (vault layout, writer, index) and export bundles, shared by device and
customs.
"""
