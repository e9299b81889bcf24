"""Transport security: certificates for TLS and mTLS (the development CA, and reloading)."""
