"""One asyncio + aiohttp load client for enroll and its peers (see bench/compare.py).

- `measure`: CPU of process trees from /proc, latency percentiles, the timed phase.
- `servers`: start `enroll serve`, pebble and micromdm's scepserver on loopback.
- `certcheck`: every issued certificate is checked after the timed phase.
- `acme`, `scep`, `est`: one protocol each; keys, CSRs and messages are made before the
  clock starts, every virtual user has its own keep-alive aiohttp session.
"""
