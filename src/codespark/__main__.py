"""``python -m codespark``."""

from codespark.cli import main

main()
