"""caricatures."""
