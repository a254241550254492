"""Storage backends of agentmem (installed as ``agentmem.backends``)."""
