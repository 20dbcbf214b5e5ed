"""The identity-platform policy pack (CrossGuard). Rules: `policy.validators`; pack: `policy/__main__.py`."""
