"""The identity-platform policy pack (CrossGuard): rules in `validators.py`, the pack in `__main__.py`.

Self-contained (docs/operations.md, "Policy pack"): its modules import each other relatively, so the
directory works as the project's `policy` package and, copied or published, under any name."""
