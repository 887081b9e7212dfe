"""What the processes of a fleet share, so that N workers on M hosts act as one gateway:
rate-limit holds, OAuth tokens and their refresh, cache purges, per-case write locks and what
creates made. Through Redis when `shared_state.redis_url` is set (`redis`, and `holds`,
`tokens`, `purges`, `locks`, `recall` on it); the workers of one host also coordinate without
it, through the token file and their supervisor (`host`, `relay`). `state` puts the pieces
together for one process."""
