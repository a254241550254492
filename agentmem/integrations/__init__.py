"""Integrations of agentmem with other frameworks (see ``docs/agentfarm.md``)."""
