"""Development tools shipped in the wheel: `verbatim demo` and the private PostgreSQL cluster."""
