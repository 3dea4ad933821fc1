"""Loaded by every Python process the tests start (this folder is on their PYTHONPATH)."""

import os

if os.environ.get("NETWORK_GUARD_LOG"):
    import stockcast_netguard

    stockcast_netguard.install()
