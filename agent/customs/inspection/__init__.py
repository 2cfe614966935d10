"""Remote inspections: sessions, guided check-in, alerts, decisions and the signed report."""
