"""The identity context's entry points: the OAuth2 endpoints as an ASGI app (`oauth_app`)."""
