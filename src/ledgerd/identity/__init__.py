"""The identity context: OAuth2 clients, users, their grants, and the tokens issued to them."""
