"""Auth primitives: signing keys and their rotation, access tokens, secret hashes, opaque tokens.

No business rule lives here: what a client may do is the identity context's; this package only
makes and checks the cryptographic objects the context and the request pipeline use.
"""
