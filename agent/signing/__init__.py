"""Foundation: device keys, signed records, the one trust module and offline verification."""
