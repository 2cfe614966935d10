"""The fleet administrator's side of officer trust: the admin identity and signed trust bundles."""
