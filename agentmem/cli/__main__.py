"""``python -m agentmem.cli``: the ``agentmem`` command."""

from agentmem.cli import main

main()
