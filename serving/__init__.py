"""In-process assessment of wound scans by the champion ensemble (no serving framework imported here)."""
