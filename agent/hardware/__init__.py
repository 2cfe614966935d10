"""Device wing: the Pi's enclosure (GPIO LEDs, tamper switch, button) and the systemd watchdog."""
