"""In-memory stand-ins for the domain's ports, with the semantics of the real adapters."""
