"""Device keys, signed records and their verification."""
