"""The running daemon's wiring and its adapters (ARI, FastAGI, database writes, metrics)."""
