"""Translations between the single support plan and national formats (pure functions, no I/O
beyond reading the package's own data files once)."""
