"""``python -m ktrain.cli``: the ``ktrain`` command."""

from ktrain.cli import main

main()
