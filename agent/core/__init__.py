"""Foundation: small helpers with no third-party imports (errors, clocks, durable writes, the values that flow
between parts).
"""
