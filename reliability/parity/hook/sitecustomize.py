"""Loaded by every Python process whose PYTHONPATH starts with this folder (the `make gcp-parity` e2e run): installs
the API audit recorder when CLOUDACT_API_AUDIT_DIR is set, then runs the next sitecustomize on the path, if any (an e2e
test may bring its own, e.g. tests/e2e/test_emulator_dead_letters.py's fault hook)."""

import importlib.util
import os
import sys

if os.environ.get("CLOUDACT_API_AUDIT_DIR"):
    import cdp_api_audit

    cdp_api_audit.install()

_here = os.path.dirname(os.path.abspath(__file__))
for _entry in sys.path:
    _candidate = os.path.join(_entry or os.getcwd(), "sitecustomize.py")
    if os.path.abspath(os.path.dirname(_candidate)) != _here and os.path.isfile(_candidate):
        _spec = importlib.util.spec_from_file_location("sitecustomize", _candidate)
        if _spec is not None and _spec.loader is not None:
            _module = importlib.util.module_from_spec(_spec)
            sys.modules["sitecustomize"] = _module
            _spec.loader.exec_module(_module)
        break
