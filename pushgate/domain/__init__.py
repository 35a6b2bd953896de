"""Pure types and rules of push delivery: no I/O lives here."""
