"""The customs CA's operations (``evidence-officer ca``): a file-based CA folder with an append-only log.

``folder.py`` the CA folder (certificate, key that never leaves it, issued certificates); ``log.py`` the
hash-chained issuance log; ``profiles.py`` what a device and an officer certificate carry; ``crl.py``
revocation and the published CRL; ``cli.py`` the subcommands. See docs/ca.md.
"""
