"""Server processes agentmem starts itself: private ``redis-server``/Valkey
processes and clusters of them (for tests, benchmarks and the demo), and the
embedded default, the data folder's Valkey server with its append-only file.

May import: ``agentmem.errors``. Nothing else of agentmem; no redis-py.
"""
