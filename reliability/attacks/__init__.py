"""The tenant-isolation attack corpus (issue 13) as data, and the pieces of its drill that need no runtime.

`reliability/checks/tenant_attacks.py` runs it: one attacker tenant against one victim tenant on the embedded runtime.
"""
