"""The application around the library: the demo simulation and its report
(PNG charts, store counts).

May import everything below it: every subpackage but ``agentmem.cli`` and the
public surface ``agentmem`` itself.
"""
