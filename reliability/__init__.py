"""`make reliability`: the reliability/security suite of issue 7 (one figure per line; non-zero exit on any loss)."""
