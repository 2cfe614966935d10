"""Certificate-storage anchoring: device Merkle log, signed checkpoints, RFC 3161 and ledger receipts."""
