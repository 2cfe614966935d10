"""Foundation: the device Merkle log format, signed checkpoints, RFC 3161 and ledger receipts, and their offline
checks.
"""
