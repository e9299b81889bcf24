"""The identity context's storage: tables, SQL repositories, migrations, the key store."""
