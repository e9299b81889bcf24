"""Secrets kept outside ledgerd's settings: a reference in a setting, resolved by a store.

``references`` is the grammar (``secret://STORE/...``), ``ports`` the store's contract,
``local``, ``vault`` and ``aws`` the adapters, ``cache`` what keeps the values current,
``leases`` dynamic database credentials leased from OpenBao/Vault and renewed.
"""
